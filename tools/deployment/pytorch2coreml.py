"""Export the fused model of a config to Core ML (stock coremltools, no custom ops).

    python tools/deployment/pytorch2coreml.py CONFIG CHECKPOINT OUT [--shape H W]
        [--convert-to mlprogram|neuralnetwork] [--image-input [--color-layout RGB|BGR]]
        [--fp16] [--backbone-only] [--force]

CONFIG and CHECKPOINT are a training config with its checkpoint (fused here) or a
deploy config with a fused checkpoint. Classifiers export their logits; detectors
and segmentors (or any model with --backbone-only) export the backbone's stage
outputs. The model is traced at --shape (default: the config's test size) and
converted to an ML program (OUT ends in .mlpackage, iOS 15 / macOS 12 and newer) or,
with --convert-to neuralnetwork, to a neural network (OUT ends in .mlmodel, like the
published RepViT/RepNeXt files). --image-input takes 0-255 images and builds the
config's per-channel mean and std into the model, in the channel order the config's
model sees (RGB when its data preprocessor converts to RGB, else BGR).

Core ML runs predictions only on macOS: on Linux this tool checks what it can (the
inputs, outputs and their shapes, that no op the fusion removes, such as batch norm,
is left, and that the saved file loads) and writes OUT only when those hold (never
over an existing OUT without --force, never half a package).
"""
import argparse
import os.path as osp
import sys
import time

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.coreml_export import (EXTENSIONS, convert, import_coremltools, op_types,
                                             save_checked)
from repmobile_mm.apis.export import fused_model, preprocessing
from repmobile_mm.apis.model_io import test_input_size
from repmobile_mm.apis.runner import add_cfg_options
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import check_output_path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the .mlpackage (ML program) or .mlmodel to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's test size)")
    parser.add_argument('--convert-to', choices=list(EXTENSIONS), default='mlprogram')
    parser.add_argument('--image-input', action='store_true',
                        help="take 0-255 images, the config's mean and std built in")
    parser.add_argument('--color-layout', choices=['RGB', 'BGR'],
                        help="of --image-input (default: the channel order the config's "
                        'model sees)')
    parser.add_argument('--fp16', action='store_true', help='fp16 weights and compute')
    parser.add_argument('--backbone-only', action='store_true',
                        help='export the backbone of a classifier too')
    parser.add_argument('--force', action='store_true', help='replace an existing out')
    add_cfg_options(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    extension = EXTENSIONS[args.convert_to]
    if not args.out.endswith(extension):
        raise SystemExit(f'--convert-to {args.convert_to} writes a {extension}: name the '
                         f'output {osp.splitext(args.out)[0]}{extension}')
    if args.color_layout and not args.image_input:
        raise SystemExit('--color-layout is for --image-input')
    check_output_path(args.out, args.force)  # before any work
    import_coremltools()
    cfg, model = fused_model(args.config, args.checkpoint, args.cfg_options)
    net, _, _ = task_of(cfg).export_net(model, args.backbone_only)
    height, width = args.shape or test_input_size(cfg)
    input_shape = (1, 3, height, width)
    image_input = None
    if args.image_input:
        mean, std, rgb = preprocessing(cfg)
        image_input = (mean, std, args.color_layout or ('RGB' if rgb else 'BGR'))

    start = time.time()
    mlmodel, expected_shapes = convert(net, input_shape, args.convert_to, args.fp16,
                                       image_input)
    print(f'converted in {time.time() - start:.1f} s: {len(op_types(mlmodel.get_spec()))} '
          f'{"ops" if args.convert_to == "mlprogram" else "layers"}, input '
          f'{"image" if image_input else "input"} {input_shape}, outputs {expected_shapes}')
    save_checked(mlmodel, args.out, expected_shapes, input_shape, args.force)
    print(f'wrote {args.out} (Core ML runs it on macOS and iOS; Linux cannot run predictions)')


if __name__ == '__main__':
    sys.exit(run(main))
