import pytest
import torch

from repmobile_mm.models.utils import gated_activation


def reference(y, gate, shift):
    return y * torch.sigmoid(y + gate) + shift[:, None, None]


class LaunchCounter:
    """Stands in for the Triton kernel and counts its launches."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


def test_torch_path_matches_the_formula():
    y, gate, shift = torch.randn(2, 5, 7, 3), torch.randn(2, 5, 1, 1), torch.randn(5)
    assert torch.allclose(gated_activation.gated_shift(y, gate, shift),
                          reference(y, gate, shift), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available() or gated_activation.triton is None,
                    reason='the Triton kernel needs a CUDA device and Triton')
@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12), (torch.float32, 1e-5),
                                       (torch.float16, 4e-3)])
@pytest.mark.parametrize('channels_last', [False, True])
def test_triton_kernel_matches_torch(dtype, tol, channels_last, monkeypatch):
    torch.manual_seed(0)
    y = torch.randn(3, 40, 170, 231, device='cuda', dtype=dtype)  # above the kernel's size floor
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    y = y.contiguous(memory_format=memory_format)
    gate = torch.randn(3, 40, 1, 1, device='cuda', dtype=dtype)
    shift = torch.randn(40, device='cuda', dtype=dtype)
    counter = LaunchCounter(gated_activation._gated_shift_kernel)
    monkeypatch.setattr(gated_activation, '_gated_shift_kernel', counter)
    fused = gated_activation.gated_shift(y, gate, shift)
    assert counter.launches == 1  # the kernel ran, not the torch expressions
    monkeypatch.setenv('REPMOBILE_TRITON', '0')
    expected = gated_activation.gated_shift(y, gate, shift)
    assert counter.launches == 1
    assert fused.is_contiguous(memory_format=memory_format)
    err = (fused.double() - expected.double()).abs().max().item()
    assert err <= tol * (1 + expected.abs().max().item())
