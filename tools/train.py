"""Train a classifier, detector or segmentor from a config (its default_scope picks the library).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.runner import add_common_args, config_from_args, train


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model from a config')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--resume', nargs='?', const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint '
                        'in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--no-validate', action='store_true', help='skip validation')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the actual total batch size')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    train(config_from_args(args), validate=not args.no_validate, resume=args.resume,
          amp=args.amp, auto_scale_lr=args.auto_scale_lr)


if __name__ == '__main__':
    sys.exit(run(main))
