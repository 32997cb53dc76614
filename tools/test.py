"""Test a checkpoint with a config (its default_scope picks the library and the metrics).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--dump FILE.pkl]
        [--cfg-options k=v ...]
"""
import argparse
import json
import sys

from mmengine.dist import is_main_process

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.runner import add_common_args, config_from_args, evaluate


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--dump', metavar='FILE.pkl',
                        help="also write every image's prediction to this pickle "
                        "(mmengine's DumpResults)")
    parser.add_argument('--amp', action='store_true', help='test in fp16')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    metrics = evaluate(config_from_args(args), args.checkpoint, dump=args.dump, amp=args.amp)
    if args.out and is_main_process():  # every process has the metrics; one writes them
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=2)


if __name__ == '__main__':
    sys.exit(run(main))
