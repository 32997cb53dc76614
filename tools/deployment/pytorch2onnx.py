"""Export the fused model of a config to ONNX, with dynamic batch and image size.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx [--backbone-only] [--force]

CONFIG and CHECKPOINT are a training config with its checkpoint (fused here) or a
deploy config with a fused checkpoint. Classifiers export their logits, segmentors
their logits at the input size (what mmseg's postprocessing takes), detectors (or any
model with --backbone-only) the backbone's stage outputs. The file is checked in
onnxruntime against PyTorch at two input sizes, one of them odd, before it is renamed
into place (an existing OUT only with --force).
"""
import argparse
import sys

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.export import check_with_onnxruntime, fused_model, onnx_export
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import check_output_path, write_atomically


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone of a classifier or segmentor')
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--force', action='store_true', help='replace an existing out')
    args = parser.parse_args()
    check_output_path(args.out, args.force)
    cfg, model = fused_model(args.config, args.checkpoint)
    net, num_outputs, spatial = task_of(cfg).export_net(model, args.backbone_only,
                                                        segmentor_logits=True)

    def export_and_check(path):
        onnx_export(net, path, num_outputs, spatial)
        diff = check_with_onnxruntime(
            net, path, [torch.randn(1, 3, 224, 224), torch.randn(2, 3, 67, 45)])
        print(f'onnxruntime vs PyTorch at 1x3x224x224 and 2x3x67x45: largest relative '
              f'difference {diff:.2e}')
        if not diff <= args.rtol:
            raise SystemExit(f'not writing {args.out}: the exported model differs from '
                             f'PyTorch by more than {args.rtol:g}')

    write_atomically(args.out, export_and_check, args.force)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    sys.exit(run(main))
