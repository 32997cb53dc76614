"""`make demo`: build RepMobile S, M and L, fuse them, check and time both forms."""
import argparse
import copy
import time

import torch

from repmobile_mm.models import RepMobileNet
from repmobile_mm.utils import (count_macs, count_params, interleaved_latency,
                                randomize_batchnorm)

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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--archs', nargs='+', default=['S', 'M', 'L'])
    parser.add_argument('--repeats', type=int, default=30, help='timed calls per form')
    args = parser.parse_args()
    start = time.time()
    backbone_demo(args)
    print(f'demo finished in {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
