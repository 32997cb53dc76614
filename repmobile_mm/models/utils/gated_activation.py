"""The deploy block's gated activation, one Triton kernel on GPU in eager mode.

``y * sigmoid(y + gate) + shift`` is three broadcasting element-wise kernels in
eager PyTorch, each a full pass over the block's widest tensor; one kernel reads
``y`` once and writes once. ``torch.compile`` fuses the same ops by itself, so
under compilation, on CPU, during ONNX export, with autograd, or without Triton,
the plain torch expressions run. ``REPMOBILE_TRITON=0`` switches the kernel off.
"""
import os
from typing import Optional

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs
    triton = None

_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)  # fp64 computes in fp64
_BLOCK = 1024
# Below this size the kernel's host-side launch costs more than the passes it saves
# (batch-1 latency), except inside a CUDA graph, where launches cost nothing.
_MIN_NUMEL = 1 << 20

if triton is not None:

    @triton.jit
    def _gated_shift_kernel(y_ptr, gate_ptr, shift_ptr, out_ptr, numel, channels, hw,
                            CHANNELS_LAST: tl.constexpr, FP64: tl.constexpr,
                            BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < numel
        if CHANNELS_LAST:
            channel = offsets % channels
        else:
            channel = (offsets // hw) % channels
        sample = offsets // (channels * hw)
        compute = tl.float64 if FP64 else tl.float32
        y = tl.load(y_ptr + offsets, mask=mask).to(compute)
        gate = tl.load(gate_ptr + sample * channels + channel, mask=mask).to(compute)
        shift = tl.load(shift_ptr + channel, mask=mask).to(compute)
        out = y / (1.0 + tl.exp(-(y + gate))) + shift
        tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=mask)


def _kernel_layout(y: torch.Tensor, *params: torch.Tensor) -> Optional[bool]:
    """Whether the kernel can run here: None if not, else whether ``y`` is channels-last."""
    # compiling first: the checks after it would break the traced graph
    if (torch.compiler.is_compiling() or triton is None or not y.is_cuda
            or torch.onnx.is_in_onnx_export() or os.environ.get('REPMOBILE_TRITON', '1') == '0'
            or y.dtype not in _DTYPES or y.numel() >= 2**31
            or (y.numel() < _MIN_NUMEL and not torch.cuda.is_current_stream_capturing())
            or (torch.is_grad_enabled() and any(t.requires_grad for t in (y, ) + params))):
        return None
    if y.is_contiguous():
        return False
    if y.is_contiguous(memory_format=torch.channels_last):
        return True
    return None


def gated_shift(y: torch.Tensor, gate: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``y * sigmoid(y + gate) + shift``; ``y`` is (N, C, H, W), ``gate`` (N, C, 1, 1),
    ``shift`` (C,)."""
    if not torch.jit.is_scripting():  # TorchScript compiles the plain expression only
        channels_last = _kernel_layout(y, gate, shift)
        if channels_last is not None:
            return _triton_gated_shift(y, gate, shift, channels_last)
    return mul_add(shift.view(-1, 1, 1), y, torch.sigmoid(y + gate))


def mul_add(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
            value: float = 1.0) -> torch.Tensor:
    """``bias + value * a * b``: one ``addcmul`` kernel in eager mode; plain multiply
    and add in a traced graph (ONNX export, Core ML conversion), which every converter
    knows (coremltools 9 has no ``addcmul``). ``a`` should be the smaller factor."""
    if torch.jit.is_tracing():
        return bias + (a if value == 1.0 else a * value) * b
    return torch.addcmul(bias, a, b, value=value)


def _triton_gated_shift(y: torch.Tensor, gate: torch.Tensor, shift: torch.Tensor,
                        channels_last: bool) -> torch.Tensor:
    out = torch.empty_like(y)
    _, c, h, w = y.shape
    grid = (triton.cdiv(y.numel(), _BLOCK), )
    _gated_shift_kernel[grid](y, gate.to(y.dtype).contiguous(), shift.to(y.dtype).contiguous(),
                              out, y.numel(), c, h * w, CHANNELS_LAST=channels_last,
                              FP64=y.dtype == torch.float64, BLOCK=_BLOCK)
    return out
