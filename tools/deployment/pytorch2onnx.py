"""Export the fused model of a config to ONNX, with dynamic batch and image size.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT OUT.onnx [--backbone-only] [--force]

CONFIG and CHECKPOINT are a training config with its checkpoint (fused here) or a
deploy config with a fused checkpoint. Classifiers export their logits; detectors
and segmentors (or any model with --backbone-only) export the backbone's stage
outputs. The file is checked in onnxruntime against PyTorch at two input sizes,
one of them odd, before it is renamed into place (an existing OUT only with --force).
"""
import argparse

import numpy as np
import torch
from torch import nn

from repmobile_mm.engine.checkpoint import check_output_path, write_atomically
from repmobile_mm.engine.model_io import build_model, fused_copy, load_weights, read_state_dict
from repmobile_mm.engine.runner import load_config


class Logits(nn.Module):
    """An mmpretrain classifier's ``mode='tensor'`` output as a plain forward."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x):
        return self.classifier(x, mode='tensor')


def export(net: nn.Module, path: str, num_outputs: int, spatial_outputs: bool):
    """ONNX with dynamic batch and input size (and output size for feature maps)."""
    output_names = [f'output{i}' for i in range(num_outputs)]
    image_axes = {0: 'batch', 2: 'height', 3: 'width'}
    dynamic = {'input': image_axes}
    for name in output_names:
        dynamic[name] = image_axes if spatial_outputs else {0: 'batch'}
    torch.onnx.export(net, (torch.randn(1, 3, 224, 224), ), path, input_names=['input'],
                      output_names=output_names, dynamic_axes=dynamic, opset_version=17,
                      dynamo=False)


def check_with_onnxruntime(net: nn.Module, path: str, sizes) -> float:
    """Largest difference between onnxruntime and PyTorch, relative to the largest output."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    worst = 0.0
    for batch, height, width in sizes:
        x = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            expected = net(x)
        expected = [expected] if torch.is_tensor(expected) else list(expected)
        got = session.run(None, {'input': x.numpy()})
        for e, g in zip(expected, got):
            e = e.numpy()
            if e.shape != g.shape:
                raise SystemExit(f'onnxruntime output shape {g.shape} != PyTorch {e.shape}')
            worst = max(worst, float(np.abs(e - g).max() / np.abs(e).max()))
    return worst


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .onnx file to write')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone of a classifier too')
    parser.add_argument('--rtol', type=float, default=1e-4)
    parser.add_argument('--force', action='store_true', help='replace an existing out')
    args = parser.parse_args()
    check_output_path(args.out, args.force)
    cfg = load_config(args.config)
    model = build_model(cfg).eval()
    load_weights(model, read_state_dict(args.checkpoint), args.checkpoint, args.config)
    model = fused_copy(model)
    if cfg.default_scope == 'mmpretrain' and not args.backbone_only:
        net, num_outputs, spatial = Logits(model).eval(), 1, False
    else:
        net, num_outputs, spatial = model.backbone, len(model.backbone.out_indices), True

    def export_and_check(path):
        export(net, path, num_outputs, spatial)
        diff = check_with_onnxruntime(net, path, [(1, 224, 224), (2, 67, 45)])
        print(f'onnxruntime vs PyTorch at 1x3x224x224 and 2x3x67x45: largest relative '
              f'difference {diff:.2e}')
        if not diff <= args.rtol:
            raise SystemExit(f'not writing {args.out}: the exported model differs from '
                             f'PyTorch by more than {args.rtol:g}')

    write_atomically(args.out, export_and_check, args.force)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
