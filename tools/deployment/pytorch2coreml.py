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
import logging
import os.path as osp
import sys
import time

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.export import Normalized, fused_model, preprocessing
from repmobile_mm.apis.model_io import test_input_size
from repmobile_mm.apis.runner import add_cfg_options
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import check_output_path, write_atomically

EXTENSIONS = {'mlprogram': '.mlpackage', 'neuralnetwork': '.mlmodel'}
# ops a fused model must not have (Core ML's names in ML programs and neural networks)
UNFUSED_OPS = {'batch_norm', 'batchnorm', 'instance_norm'}


def import_coremltools():
    # its import warns that Linux has no Core ML runtime (and about untested versions
    # of torch and scikit-learn): this tool says what that means at the end
    logger = logging.getLogger('coremltools')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import coremltools
    except ImportError:
        raise SystemExit('coremltools is not installed: pip install -r requirements/deploy.txt '
                         '(coremltools==9.0)') from None
    finally:
        logger.setLevel(level)
    return coremltools


def op_types(spec) -> list:
    """The op (ML program) or layer (neural network) types of a Core ML spec."""
    if spec.WhichOneof('Type') == 'mlProgram':
        types = []

        def walk(block):
            for op in block.operations:
                types.append(op.type)
                for inner in op.blocks:
                    walk(inner)

        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                walk(block)
        return types
    return [layer.WhichOneof('layer') for layer in spec.neuralNetwork.layers]


def feature_shapes(features) -> dict:
    """``{name: shape}`` of a spec's inputs or outputs (images as (1, C, H, W))."""
    shapes = {}
    for feature in features:
        kind = feature.type.WhichOneof('Type')
        if kind == 'imageType':
            image = feature.type.imageType
            channels = 1 if image.colorSpace == image.GRAYSCALE else 3
            shapes[feature.name] = (1, channels, image.height, image.width)
        else:
            shapes[feature.name] = tuple(feature.type.multiArrayType.shape)
    return shapes


def check_converted(spec, expected_outputs: dict, input_shape: tuple) -> list:
    """What is wrong with the converted model (an empty list when nothing is). Output
    shapes are compared where the spec gives them (neural networks leave them out)."""
    problems = []
    inputs = feature_shapes(spec.description.input)
    if list(inputs.values()) != [input_shape]:
        problems.append(f'inputs {inputs}, expected one of shape {input_shape}')
    outputs = feature_shapes(spec.description.output)
    if list(outputs) != list(expected_outputs) or any(
            shape and shape != expected_outputs[name] for name, shape in outputs.items()):
        problems.append(f'outputs {outputs}, expected {expected_outputs}')
    left = sorted(UNFUSED_OPS.intersection(op_types(spec)))
    if left:
        problems.append(f'ops the fusion should have removed: {left}')
    return problems


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
    ct = import_coremltools()
    cfg, model = fused_model(args.config, args.checkpoint, args.cfg_options)
    net, _, _ = task_of(cfg).export_net(model, args.backbone_only)
    height, width = args.shape or test_input_size(cfg)
    input_shape = (1, 3, height, width)
    if args.image_input:
        mean, std, rgb = preprocessing(cfg)
        net = Normalized(net, mean, std).eval()
        layout = args.color_layout or ('RGB' if rgb else 'BGR')
        inputs = [ct.ImageType(name='image', shape=input_shape,
                               color_layout=getattr(ct.colorlayout, layout))]
    else:
        inputs = [ct.TensorType(name='input', shape=input_shape)]

    example = torch.rand(input_shape) * (255 if args.image_input else 1)
    with torch.no_grad():
        expected = net(example)
        traced = torch.jit.trace(net, example)
    expected = [expected] if torch.is_tensor(expected) else list(expected)
    output_names = [f'output{i}' for i in range(len(expected))]
    expected_shapes = {name: tuple(t.shape) for name, t in zip(output_names, expected)}

    start = time.time()
    options = {}
    if args.convert_to == 'mlprogram':  # coremltools' default there is fp16
        options['compute_precision'] = (ct.precision.FLOAT16 if args.fp16 else
                                        ct.precision.FLOAT32)
    mlmodel = ct.convert(traced, inputs=inputs,
                         outputs=[ct.TensorType(name=name) for name in output_names],
                         convert_to=args.convert_to, **options)
    if args.fp16 and args.convert_to == 'neuralnetwork':
        from coremltools.models.neural_network import quantization_utils
        mlmodel = quantization_utils.quantize_weights(mlmodel, nbits=16)
    print(f'converted in {time.time() - start:.1f} s: {len(op_types(mlmodel.get_spec()))} '
          f'{"ops" if args.convert_to == "mlprogram" else "layers"}, input '
          f'{inputs[0].name} {input_shape}, outputs {expected_shapes}')

    def save_and_check(path):
        mlmodel.save(path)
        saved = ct.models.MLModel(path, skip_model_load=True)  # what can load on Linux
        problems = check_converted(saved.get_spec(), expected_shapes, input_shape)
        if problems:
            raise SystemExit(f'not writing {args.out}: ' + '; '.join(problems))

    write_atomically(args.out, save_and_check, args.force)
    print(f'wrote {args.out} (Core ML runs it on macOS and iOS; Linux cannot run predictions)')


if __name__ == '__main__':
    sys.exit(run(main))
