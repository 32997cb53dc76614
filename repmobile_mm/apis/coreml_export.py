"""Core ML conversion of a fused model (stock coremltools, no custom ops), and the
checks that Linux can make of the result: inputs, outputs and their shapes, no op the
fusion removes (batch norm) left, and a saved file that loads. Core ML runs
predictions only on macOS and iOS. Its command line: tools/deployment/pytorch2coreml.py.
"""
import logging
from typing import Optional, Tuple

import torch
from torch import nn

from ..engine.checkpoint import write_atomically
from ..errors import ExportError
from .export import Normalized

EXTENSIONS = {'mlprogram': '.mlpackage', 'neuralnetwork': '.mlmodel'}
# ops a fused model must not have (Core ML's names in ML programs and neural networks)
UNFUSED_OPS = {'batch_norm', 'batchnorm', 'instance_norm'}


def import_coremltools():
    """``coremltools``, or an :class:`ExportError` naming what to install."""
    # its import warns that Linux has no Core ML runtime (and about untested versions
    # of torch and scikit-learn): this tool says what that means at the end
    logger = logging.getLogger('coremltools')
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import coremltools
    except ImportError:
        raise ExportError('coremltools is not installed: pip install -r requirements/deploy.txt '
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


def convert(net: nn.Module, input_shape: Tuple[int, ...], convert_to: str = 'mlprogram',
            fp16: bool = False, image_input: Optional[Tuple[list, list, str]] = None):
    """``(mlmodel, {output name: shape})`` of ``net`` traced at ``input_shape``; with
    ``image_input = (mean, std, 'RGB' or 'BGR')`` it takes 0-255 images of that channel
    order and normalizes them itself."""
    ct = import_coremltools()
    if image_input:
        mean, std, layout = image_input
        net = Normalized(net, mean, std).eval()
        inputs = [ct.ImageType(name='image', shape=input_shape,
                               color_layout=getattr(ct.colorlayout, layout))]
    else:
        inputs = [ct.TensorType(name='input', shape=input_shape)]
    example = torch.rand(input_shape) * (255 if image_input else 1)
    with torch.no_grad():
        expected = net(example)
        traced = torch.jit.trace(net, example)
    expected = [expected] if torch.is_tensor(expected) else list(expected)
    output_names = [f'output{i}' for i in range(len(expected))]
    expected_shapes = {name: tuple(t.shape) for name, t in zip(output_names, expected)}
    options = {}
    if convert_to == 'mlprogram':  # coremltools' default there is fp16
        options['compute_precision'] = ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32
    mlmodel = ct.convert(traced, inputs=inputs,
                         outputs=[ct.TensorType(name=name) for name in output_names],
                         convert_to=convert_to, **options)
    if fp16 and convert_to == 'neuralnetwork':
        from coremltools.models.neural_network import quantization_utils
        mlmodel = quantization_utils.quantize_weights(mlmodel, nbits=16)
    return mlmodel, expected_shapes


def save_checked(mlmodel, path: str, expected_shapes: dict, input_shape: tuple,
                 force: bool = False) -> None:
    """Save ``mlmodel`` atomically at ``path``, only if the saved file loads (what Linux
    can load) and passes :func:`check_converted`; else an :class:`ExportError`."""
    ct = import_coremltools()

    def save_and_check(partial):
        mlmodel.save(partial)
        saved = ct.models.MLModel(partial, skip_model_load=True)
        problems = check_converted(saved.get_spec(), expected_shapes, input_shape)
        if problems:
            raise ExportError(f'not writing {path}: ' + '; '.join(problems))

    write_atomically(path, save_and_check, force)
