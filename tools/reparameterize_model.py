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
import time

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.model_io import (build_model, fits, has_fusable_modules,
                                        load_weights, max_difference, state_dict_of,
                                        test_input_size)
from repmobile_mm.apis.runner import add_cfg_options, load_config
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.models import fused_copy
from repmobile_mm.engine.checkpoint import check_output_path, read_checkpoint, save_atomically


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
    check_output_path(args.dst, args.force)  # before any work
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg).eval()
    if not has_fusable_modules(model):
        raise SystemExit(f'nothing to fuse: no module of the {type(model).__name__} built by '
                         f'{args.config} offers switch_to_deploy, reparameterize or fuse')
    checkpoint = read_checkpoint(args.src)
    state_dict = state_dict_of(checkpoint, args.src)
    fused_structure = fused_copy(model)
    if fits(fused_structure, state_dict):
        raise SystemExit(f'{args.src} is already fused (deploy form): use it as it is, with '
                         f'the deploy twin of {args.config} under deploy/')
    load_weights(model, state_dict, args.src, args.config)

    start = time.time()
    fused = fused_copy(model)
    height, width = args.shape or test_input_size(cfg)
    inputs = torch.randn(1, 3, height, width)
    diff, scale = max_difference(model, fused, inputs, task_of(cfg))
    print(f'fused {type(model).__name__} in {time.time() - start:.1f} s; on a random '
          f'1x3x{height}x{width} input the outputs differ by at most {diff:.3g} '
          f'(largest output {scale:.3g}, relative {diff / max(scale, 1e-12):.3g})')
    if not diff <= args.rtol * scale:
        raise SystemExit(f'refusing to write {args.dst}: the fused model does not reproduce '
                         f'the trained one (relative difference above {args.rtol:g})')
    meta = dict(fused_from=args.src, config=args.config)
    # class names and palette, which the mm inferencers and visualizers read from here
    source_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(source_meta, dict) and 'dataset_meta' in source_meta:
        meta['dataset_meta'] = source_meta['dataset_meta']
    save_atomically({'state_dict': fused.state_dict(), 'meta': meta}, args.dst, args.force)
    print(f'wrote {args.dst}')


if __name__ == '__main__':
    sys.exit(run(main))
