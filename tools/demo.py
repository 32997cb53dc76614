"""`make demo`: the RepMobile journey on this machine.

1. Backbones: build RepMobile S, M and L, fuse them, check and time both forms.
2. Classification on real data (scikit-learn's digits): export the data, train with
   tools/train.py, test with tools/test.py, fuse with tools/reparameterize_model.py,
   test the fused checkpoint with the deploy config, time both forms.
"""
import argparse
import copy
import json
import os.path as osp
import shutil
import subprocess
import sys
import time

import torch

from repmobile_mm.engine.model_io import build_model, load_weights, read_state_dict
from repmobile_mm.engine.runner import load_config
from repmobile_mm.models import RepMobileNet
from repmobile_mm.utils import (count_macs, count_params, interleaved_latency,
                                randomize_batchnorm)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DIGITS_CONFIG = 'classification/configs/repmobile/repmobile-s_1xb64_digits.py'
DIGITS_DEPLOY_CONFIG = 'classification/configs/repmobile/deploy/repmobile-s-deploy_1xb64_digits.py'

CHECK_SIZES = [(224, 224), (67, 45), (33, 97)]


def fuse(model):
    fused = copy.deepcopy(model)
    fused.switch_to_deploy()
    return fused


def max_relative_difference(model, dtype):
    """Largest |deploy - training| over the check sizes, relative to the largest logit.

    The model is cast before fusing, so the fold runs on the weights it is compared with.
    """
    model = copy.deepcopy(model).to(dtype)
    fused = fuse(model)
    worst = 0.0
    with torch.no_grad():
        for height, width in CHECK_SIZES:
            x = torch.randn(2, 3, height, width, dtype=dtype)
            a, b = model(x), fused(x)
            worst = max(worst, ((a - b).abs().max() / a.abs().max()).item())
    return worst


def backbone_demo(args):
    print(f'RepMobile training form vs fused deploy form ({torch.get_num_threads()} CPU '
          'threads, 1000 classes, eval mode, randomized BatchNorm statistics)')
    header = (f"{'variant':<8} {'params train/deploy':>20} {'MACs train/deploy':>18} "
              f"{'max rel diff fp32/fp64':>23} {'latency b1 train/deploy':>24} {'speed-up':>8}")
    print(header)
    print('-' * len(header))
    for arch in args.archs:
        torch.manual_seed(0)
        model = randomize_batchnorm(RepMobileNet(arch)).eval()
        fused = fuse(model)
        diff32 = max_relative_difference(model, torch.float32)
        diff64 = max_relative_difference(model, torch.float64)
        latency = interleaved_latency({'train': model, 'deploy': fused},
                                      torch.randn(1, 3, 224, 224), repeats=args.repeats)
        print(f'{arch:<8} {count_params(model) / 1e6:>9.2f}M /{count_params(fused) / 1e6:>6.2f}M '
              f'{count_macs(model) / 1e9:>9.3f}G /{count_macs(fused) / 1e9:>6.3f}G '
              f'{diff32:>13.1e} /{diff64:>8.1e} '
              f"{latency['train']:>12.1f} ms /{latency['deploy']:>6.1f} ms "
              f"{latency['train'] / latency['deploy']:>7.2f}x", flush=True)
        if diff64 > 1e-8:
            raise SystemExit(f'RepMobile-{arch}: the deploy form differs from the training '
                             f'form by {diff64:.2e} in float64')


def run_tool(*args):
    """Run one of the repository's tools as a user would, output streaming through."""
    command = [sys.executable, *args]
    print('$ python ' + ' '.join(args), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def classification_demo(work_dir):
    print('\n== Classification: RepMobile-S on scikit-learn digits (real data) ==', flush=True)
    if not osp.isdir(osp.join(ROOT, 'data/digits/val')):
        run_tool('tools/dataset_converters/export_digits.py', '--out', 'data/digits')
    work_dir = osp.join(work_dir, 'digits')
    shutil.rmtree(osp.join(ROOT, work_dir), ignore_errors=True)
    start = time.time()
    run_tool('tools/train.py', DIGITS_CONFIG, '--work-dir', work_dir)
    train_time = time.time() - start
    checkpoint = osp.join(work_dir, 'epoch_12.pth')
    fused = osp.join(work_dir, 'fused.pth')
    results = {}
    for name, config, ckpt in (('train', DIGITS_CONFIG, checkpoint),
                               ('deploy', DIGITS_DEPLOY_CONFIG, fused)):
        if name == 'deploy':
            run_tool('tools/reparameterize_model.py', DIGITS_CONFIG, checkpoint, fused)
        out = osp.join(work_dir, f'test_{name}.json')
        run_tool('tools/test.py', config, ckpt, '--work-dir', osp.join(work_dir, f'test_{name}'),
                 '--out', out)
        with open(osp.join(ROOT, out)) as f:
            results[name] = json.load(f)['accuracy/top1']

    models = {}
    for name, config, ckpt in (('train', DIGITS_CONFIG, checkpoint),
                               ('deploy', DIGITS_DEPLOY_CONFIG, fused)):
        model = build_model(load_config(osp.join(ROOT, config))).eval()
        load_weights(model, read_state_dict(osp.join(ROOT, ckpt)), ckpt, config)
        models[name] = model
    latency = interleaved_latency(models, torch.randn(1, 3, 32, 32))
    print(f'\ntrained in {train_time:.0f} s (12 epochs, {torch.get_num_threads()} CPU threads)')
    print(f"{'form':<8} {'top-1 (360 held-out digits)':>28} {'params':>8} {'latency b1 32x32':>18}")
    for name in ('train', 'deploy'):
        print(f'{name:<8} {results[name]:>27.2f}% {count_params(models[name]) / 1e6:>7.2f}M '
              f'{latency[name]:>15.2f} ms')
    if results['train'] != results['deploy']:
        raise SystemExit('the fused checkpoint scores differently from the trained one')


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--archs', nargs='+', default=['S', 'M', 'L'])
    parser.add_argument('--repeats', type=int, default=30, help='timed calls per form')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs are written')
    args = parser.parse_args()
    start = time.time()
    backbone_demo(args)
    classification_demo(args.work_dir)
    print(f'demo finished in {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
