"""Load every image and annotation of a config's data, through its pipeline, before a
long run; list the samples that fail (exit status 1 when there are any).

    python tools/analysis_tools/check_dataset.py CONFIG [--split train|val|test]
        [--workers N] [--cfg-options k=v ...]
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.data_check import (SPLITS, broken_samples, build_split_dataset,
                                          default_workers)
from repmobile_mm.apis.runner import add_cfg_options, load_config
from repmobile_mm.errors import BadSampleError


def workers(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f'a number of processes (0 or more), not {value!r}')
    return int(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--split', choices=SPLITS, default='train')
    parser.add_argument('--workers', type=workers, default=default_workers(),
                        help='loading processes (default: the cores, at most 8)')
    add_cfg_options(parser)
    args = parser.parse_args()
    dataset = build_split_dataset(load_config(args.config, args.cfg_options), args.split)
    total, broken = broken_samples(dataset, args.workers)
    print()
    for line in broken:
        print(line)
    if broken:
        raise BadSampleError(f'{len(broken)} of the {args.split} split\'s {total} samples '
                             'cannot be loaded (listed above)')
    print(f'all {total} samples of the {args.split} split load')


if __name__ == '__main__':
    sys.exit(run(main))
