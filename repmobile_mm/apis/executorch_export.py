"""ExecuTorch programs (``.pte``) of a fused model, lowered to XNNPACK, fp32 or int8.

Used by tools/deployment/pytorch2executorch.py and tools/analysis_tools/benchmark.py.
ExecuTorch and torchao are optional (requirements/executorch.txt, installed with
--no-deps beside requirements/deploy.txt); without them
:func:`import_executorch` raises :class:`ExecuTorchError` saying how to install them.
"""
import collections
from typing import Dict, Iterable, List, Sequence, Tuple

import torch
from torch import nn

from ..errors import ExportError
from ..utils.compare import relative_difference

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
