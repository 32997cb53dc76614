"""How far one model's outputs are from another's: the figure every check prints."""
import torch


def relative_difference(expected, actual) -> float:
    """The largest ``|actual - expected|`` relative to the largest ``|expected|``, in
    float64, of tensors or numpy arrays of one shape (an all-zero ``expected`` counts
    as 1e-12)."""
    expected = torch.as_tensor(expected).double()
    actual = torch.as_tensor(actual).double()
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-12))
