"""Train a classifier, detector or segmentor from a config (its default_scope picks the library).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.config_checks import check_data_roots, explained_registry_errors
from repmobile_mm.apis.runner import (add_common_args, apply_library_dataloader_defaults,
                                      build_runner, config_from_args, enable_amp)
from repmobile_mm.engine.checkpoint import allow_mmengine_checkpoint_globals, read_checkpoint


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
    allow_mmengine_checkpoint_globals()  # for the runner's own load_from and resume
    cfg = config_from_args(args)
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.amp:
        enable_amp(cfg)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        read_checkpoint(args.resume)  # a missing, broken or unsafe file: one line, now
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    apply_library_dataloader_defaults(cfg)
    check_data_roots(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg')
                                                  is not None else []))
    runner = build_runner(cfg)
    with explained_registry_errors(cfg):  # datasets, transforms and hooks build here
        runner.train()


if __name__ == '__main__':
    sys.exit(run(main))
