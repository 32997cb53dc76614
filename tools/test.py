"""Test a checkpoint with a config (its default_scope picks the library and the metrics).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options k=v ...]
"""
import argparse
import json

from mmengine.model import is_model_wrapper

from repmobile_mm.engine.model_io import load_weights, read_state_dict
from repmobile_mm.engine.runner import (add_common_args, apply_library_dataloader_defaults,
                                        build_runner, config_from_args)


def parse_args():
    parser = argparse.ArgumentParser(description='Test a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    parser.add_argument('--amp', action='store_true', help='test in fp16')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    state_dict = read_state_dict(args.checkpoint)
    cfg = config_from_args(args)
    if args.amp:
        cfg.test_cfg.fp16 = True
    apply_library_dataloader_defaults(cfg)
    runner = build_runner(cfg)
    # Strict, unlike the runner's own loading: a checkpoint of another model must
    # fail here with the differing keys named, not score silently at chance level.
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_weights(model, state_dict, args.checkpoint, args.config)
    metrics = runner.test()
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    main()
