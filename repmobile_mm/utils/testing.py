"""Helpers that put a model into a trained-like state for exactness checks."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, gain_range=(0.2, 0.6), seed: int = 0) -> nn.Module:
    """Give every BatchNorm random statistics, gains and shifts in a trained-like range.

    Freshly initialized BNs (mean 0, var 1, gain 1, shift 0) hide folding mistakes
    such as a missing shift on the border; these values expose them.
    """
    gen = torch.Generator().manual_seed(seed)
    low, high = gain_range
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            n = module.num_features

            def rand(*shape):
                return torch.rand(*shape, generator=gen)

            module.running_mean.copy_((rand(n) - 0.5) * 0.6)
            module.running_var.copy_(rand(n) * 1.5 + 0.5)
            module.weight.copy_(rand(n) * (high - low) + low)
            module.bias.copy_((rand(n) - 0.5) * 0.6)
    return model
