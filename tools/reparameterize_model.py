"""Fuse a trained checkpoint into its inference form, checked before it is written.

    python tools/reparameterize_model.py CONFIG SRC DST [--force] [--cfg-options k=v ...]

Builds the model of CONFIG (classifier, detector or segmentor; RepMobile, or
mmpretrain's RepVGG/MobileOne), loads SRC strictly, fuses every module that
offers switch_to_deploy / reparameterize / fuse, compares both forms on a random
input of the config's test size and writes DST (the model weights) when they
agree (never over an existing DST without --force, never half a file), with SRC's
dataset meta (class names, palette). Load DST with the config's deploy twin (under
deploy/).
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.fusion import reparameterize_checkpoint
from repmobile_mm.apis.runner import add_cfg_options


def parse_args():
    parser = argparse.ArgumentParser(description='Fuse a checkpoint into its deploy form')
    parser.add_argument('config', help='the training-form config SRC was trained with')
    parser.add_argument('src', help='trained checkpoint')
    parser.add_argument('dst', help='where to write the fused checkpoint')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='size of the check input (default: the config\'s test size)')
    parser.add_argument('--rtol', type=float, default=1e-4,
                        help='largest accepted difference, relative to the largest output')
    parser.add_argument('--force', action='store_true', help='replace an existing DST')
    add_cfg_options(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    print(reparameterize_checkpoint(args.config, args.src, args.dst, shape=args.shape,
                                    rtol=args.rtol, force=args.force,
                                    cfg_options=args.cfg_options))
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    sys.exit(run(main))
