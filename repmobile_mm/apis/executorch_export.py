"""ExecuTorch programs (``.pte``) of a fused model, lowered to XNNPACK, fp32 or int8.

Used by tools/deployment/pytorch2executorch.py and tools/analysis_tools/benchmark.py.
ExecuTorch and torchao are optional (requirements/executorch.txt, installed with
--no-deps beside requirements/deploy.txt); without them
:func:`import_executorch` raises :class:`ExecuTorchError` saying how to install them.
"""
import collections
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.checkpoint import write_atomically
from ..errors import ExportError
from ..utils.compare import relative_difference
from .model_io import DEFAULT_TEST_SIZE, test_input_size

INSTALL = ('pip install -r requirements/deploy.txt && pip install --no-deps -r '
           'requirements/executorch.txt (`make` installs them)')
# Ops that only move or name data: outside a delegate they are no computation.
NON_COMPUTE = ('getitem', 'executorch_call_delegate')
BATCH_NORMS = ('batch_norm', )
# int8 against fp32 on the calibration images. A classifier keeps its predictions: the
# arg-max of at least INT8_MIN_AGREEMENT of the images (what its top-1 depends on; the
# trained digits classifiers of all three families: 100%). Other outputs (a backbone's
# stage maps) have no arg-max: each image's largest difference relative to its largest
# fp32 output, on average, within INT8_RTOL (8-bit steps through some 25 layers).
INT8_MIN_AGREEMENT = 0.99
INT8_RTOL = 0.25
# ExecuTorch fp32 against PyTorch (measured: within 2e-6 on every family)
FP32_RTOL = 1e-4


class ExecuTorchError(ExportError):
    """A one-line reason why a program was not made or not written."""


def import_executorch():
    """The ``executorch`` package, or :class:`ExecuTorchError` naming what to install."""
    try:
        import executorch  # noqa: F401
        import torchao  # noqa: F401
        from executorch.exir import to_edge_transform_and_lower  # noqa: F401
        from executorch.runtime import Runtime  # noqa: F401
    except ImportError as err:
        raise ExecuTorchError(f'ExecuTorch is not installed ({err}): {INSTALL}') from None
    return executorch


def exported(net: nn.Module, example: torch.Tensor):
    """``torch.export`` of ``net`` (in eval mode) at the example's shape; a BatchNorm
    left in it (a fused model keeps none) is an :class:`ExecuTorchError`."""
    with torch.no_grad():
        program = torch.export.export(net, (example, ))
    left = sorted({str(node.target) for node in program.graph.nodes
                   if node.op == 'call_function'
                   and any(name in str(node.target) for name in BATCH_NORMS)})
    if left:
        raise ExecuTorchError(f'the exported program still has BatchNorm ({", ".join(left)}): '
                              'export a fused model (a training checkpoint with its training '
                              'config is fused here; a deploy config takes a fused checkpoint)')
    return program


def quantized(net: nn.Module, example: torch.Tensor, calibration: Iterable[torch.Tensor]):
    """PT2E post-training int8 with XNNPACK's quantizer: int8 weights per output channel
    (symmetric), int8 activations, ranges observed on ``calibration``."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer, get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    quantizer = XNNPACKQuantizer().set_global(
        get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(exported(net, example).module(), quantizer)
    seen = 0
    with torch.no_grad():
        for image in calibration:
            prepared(image)
            seen += 1
    if not seen:
        raise ExecuTorchError('no calibration images for int8')
    return exported(convert_pt2e(prepared), example)


def lowered(program) -> Tuple[bytes, Dict[str, int], Dict[str, int]]:
    """``(the .pte bytes, delegated ops, ops left outside XNNPACK)`` of an exported
    program lowered with the XNNPACK partitioner; ops are counted by name."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    graph = edge.exported_program().graph_module
    delegated, outside = collections.Counter(), collections.Counter()
    for node in graph.graph.nodes:
        if node.op == 'call_function' and not any(n in str(node.target) for n in NON_COMPUTE):
            outside[op_name(node.target)] += 1
    for name, module in graph.named_children():
        if name.startswith('lowered_module'):
            for node in module.original_module.graph.nodes:
                if node.op == 'call_function' and 'getitem' not in str(node.target):
                    delegated[op_name(node.target)] += 1
    return edge.to_executorch().buffer, dict(delegated), dict(outside)


def op_name(target) -> str:
    """'aten.convolution.default' for an edge op overload."""
    name = getattr(target, '__name__', None) or str(target)
    return name.split(': schema')[0].replace('<EdgeOpOverload: ', '')


class ProgramRunner:
    """A ``.pte`` file's ``forward`` in ExecuTorch's runtime, called like a module; an
    input of another shape than the program's (static) one is an :class:`ExecuTorchError`."""

    def __init__(self, path: str):
        from executorch.runtime import Runtime
        self.method = Runtime.get().load_program(path).load_method('forward')
        self.input_shape = tuple(self.method.metadata.input_tensor_meta(0).sizes())

    def __call__(self, x: torch.Tensor) -> List[torch.Tensor]:
        if tuple(x.shape) != self.input_shape:
            raise ExecuTorchError(f'the program takes inputs of shape {self.input_shape}, '
                                  f'not {tuple(x.shape)}')
        return list(self.method.execute([x.float().contiguous()]))


def set_threads(threads: int) -> None:
    """Threads of ExecuTorch's pool (XNNPACK's kernels); the whole process shares it."""
    from executorch.extension.pybindings import portable_lib
    portable_lib._unsafe_reset_threadpool(threads)


def max_relative_difference(expected: Sequence[torch.Tensor],
                            got: Sequence[torch.Tensor]) -> float:
    """Largest difference relative to the largest expected output; outputs of other
    shapes or number are an :class:`ExecuTorchError`."""
    if len(expected) != len(got):
        raise ExecuTorchError(f'the program returns {len(got)} outputs, PyTorch '
                              f'{len(expected)}')
    worst = 0.0
    for e, g in zip(expected, got):
        if e.shape != g.shape:
            raise ExecuTorchError(f'program output shape {tuple(g.shape)} != PyTorch '
                                  f'{tuple(e.shape)}')
        worst = max(worst, relative_difference(e, g))
    return worst


def check_int8(reference: Sequence[Sequence[torch.Tensor]],
               got: Sequence[Sequence[torch.Tensor]], classifier: bool) -> str:
    """The one-line verdict on an int8 program's outputs ``got`` against the fp32
    program's ``reference`` (a list of outputs per image); a program that fails it is an
    :class:`ExecuTorchError`."""
    diffs = [max_relative_difference(r, g) for r, g in zip(reference, got)]
    if not diffs:
        raise ExecuTorchError('no calibration images to check the int8 program on')
    mean = sum(diffs) / len(diffs)
    measured = (f'on the {len(diffs)} calibration images it differs from fp32 by '
                f'{mean:.3f} of the largest output on average, {max(diffs):.3f} at most')
    if classifier:
        agreement = argmax_agreement([r[0] for r in reference], [g[0] for g in got])
        measured += f', arg-max agreement {100 * agreement:.2f}%'
        if not agreement >= INT8_MIN_AGREEMENT:
            raise ExecuTorchError(f'int8 changes the prediction of {100 * (1 - agreement):.1f}% '
                                  f'of the calibration images (at most '
                                  f'{100 * (1 - INT8_MIN_AGREEMENT):g}% expected; {measured})')
    elif not mean <= INT8_RTOL:
        raise ExecuTorchError(f'int8 differs from fp32 by {mean:.3f} of the largest output on '
                              f'average over the calibration images (at most {INT8_RTOL:g} '
                              'expected)')
    return measured


def argmax_agreement(first: Sequence[torch.Tensor], second: Sequence[torch.Tensor]) -> float:
    """Share of equal arg-max over dim 1 between two runs' first outputs (per image for
    logits, per pixel for maps)."""
    same = total = 0
    for a, b in zip(first, second):
        same += int((a.argmax(1) == b.argmax(1)).sum())
        total += a.argmax(1).numel()
    return same / max(total, 1)


def check_fp32_program(runner, examples: Sequence[torch.Tensor],
                       expected: Sequence[Sequence[torch.Tensor]]) -> float:
    """The fp32 program's largest difference from PyTorch on ``examples`` (relative);
    an :class:`ExecuTorchError` beyond ``FP32_RTOL``."""
    worst = max(max_relative_difference(e, runner(x)) for e, x in zip(expected, examples))
    if not worst <= FP32_RTOL:
        raise ExecuTorchError(f'the program differs from PyTorch by {worst:.2e} (relative; '
                              f'at most {FP32_RTOL:g} expected)')
    return worst


def calibration_images(cfg, model, split: str, count: int, shape) -> list:
    """``count`` preprocessed images of the split (seeded), resized to ``shape`` where
    the test pipeline left another size (the program takes one size)."""
    from .calibration import preprocessed, split_loader
    images = []
    for _, inputs, _ in preprocessed(model, split_loader(cfg, split, count), count):
        image = torch.from_numpy(inputs)
        if tuple(image.shape[2:]) != tuple(shape):
            image = F.interpolate(image, size=shape, mode='bilinear', align_corners=False)
        images.append(image)
    if not images:
        raise ExecuTorchError(f'no calibration images: the {split} split is empty')
    return images


def program_shape(cfg, model) -> tuple:
    """The config's test size; where its test pipeline keeps the images' own size (the
    digits configs), the first validation image's, else 224x224."""
    size = test_input_size(cfg, default=None)
    if size is None:
        from .calibration import preprocessed, split_loader
        try:
            size = next(preprocessed(model, split_loader(cfg, 'val', 1), 1))[1].shape[2:]
        except (OSError, StopIteration, AssertionError):  # no validation data here
            size = DEFAULT_TEST_SIZE
    return tuple(size)


def write_checked(path: str, program: bytes, check, force: bool) -> None:
    """Write ``program`` beside ``path``, run ``check(partial path)`` on it in
    ExecuTorch's runtime, and rename it into place only if the check passes."""

    def write(partial):
        with open(partial, 'wb') as f:
            f.write(program)
        check(partial)

    write_atomically(path, write, force)


def evaluate_program(cfg, model, runner, shape) -> dict:
    """The config's validation metric with the program computing the logits, one
    image per call (the program's batch)."""
    from .calibration import evaluate

    def logits(inputs):
        outputs = []
        for image in torch.from_numpy(inputs).split(1):
            if tuple(image.shape[2:]) != tuple(shape):
                raise ExecuTorchError(f'a validation image is {tuple(image.shape[2:])}, the '
                                      f'program takes {tuple(shape)}: export at that --shape')
            outputs.append(runner(image)[0])
        return torch.cat(outputs)

    return {k: float(v) for k, v in evaluate(cfg, model, logits).items()}
