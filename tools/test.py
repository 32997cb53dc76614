"""Test a checkpoint with a config (its default_scope picks the library and the metrics).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--dump FILE.pkl]
        [--cfg-options k=v ...]
"""
import argparse
import json
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.config_checks import check_data_roots, explained_registry_errors
from repmobile_mm.apis.model_io import load_weights, read_state_dict
from repmobile_mm.apis.runner import (add_common_args, apply_library_dataloader_defaults,
                                      build_runner, config_from_args)
from repmobile_mm.engine.checkpoint import allow_mmengine_checkpoint_globals
from repmobile_mm.engine.distributed import bare_model


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
    allow_mmengine_checkpoint_globals()  # for the runner's own load_from and resume
    if args.dump and not args.dump.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--dump writes a pickle: name it .pkl, not {args.dump}')
    state_dict = read_state_dict(args.checkpoint)
    cfg = config_from_args(args)
    if args.amp:
        cfg.test_cfg.fp16 = True
    apply_library_dataloader_defaults(cfg)
    if args.dump:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [
            cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=args.dump)]
    runner = build_runner(cfg)
    # Strict, unlike the runner's own loading: a checkpoint of another model must
    # fail here with the differing keys named, not score silently at chance level.
    model = bare_model(runner)
    load_weights(model, state_dict, args.checkpoint, args.config)
    check_data_roots(cfg, ['test_dataloader'])
    with explained_registry_errors(cfg):  # datasets, transforms and metrics build here
        metrics = runner.test()
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    sys.exit(run(main))
