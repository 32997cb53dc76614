"""The published structures rebuilt from the specs, for comparison with ours: the
RepMobile block's training forward (shared/specs/repmobile.md) and the RepNeXt fuse
(shared/specs/repnext.md). tools/analysis_tools/benchmark.py times them beside ours
(``(published)`` and ``(published fuse)`` rows); the tests check them against the
published implementations' outputs and parameter counts.
"""
import copy

import torch
from torch import nn

from .backbones.repmobile import RepMobileBlock
from .backbones.repnext import RepDWConvM, RepDWConvS
from .utils.layers import Conv2dBN


class PublishedBlock(RepMobileBlock):
    """The published block's training forward: the stride-2 identity by split, add and
    concatenate, which our training form saves."""

    def forward(self, x):
        y = self.conv_pw(x)
        if self.stride == 1:
            y = y + x
        else:  # split y into halves, add x to each, concatenate back
            first, second = y.chunk(2, dim=1)
            y = torch.cat([first + x, second + x], dim=1)
        y = y * torch.sigmoid(y + self.ClaSiLU_gate(x))
        return self.conv_dw(y) + self.down(y)


def published_structure(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose blocks run the published forward (same weights)."""
    published = copy.deepcopy(model)
    for module in published.modules():
        if isinstance(module, RepMobileBlock):
            module.__class__ = PublishedBlock
    return published


def published_repnext_fuse(model: nn.Module) -> nn.Module:
    """The published RepNeXt fuse (shared/specs/repnext.md): each RepDWConvS, RepDWConvM
    and ConvNorm one conv, the two NormLinear heads one Linear; the BatchNorm after
    every token mixer (blocks and downsamples) stays."""
    fused = copy.deepcopy(model)

    def walk(module):
        for name, child in module.named_children():
            if isinstance(child, (RepDWConvS, RepDWConvM, Conv2dBN)):
                setattr(module, name, child.fuse())
            else:
                walk(child)

    walk(fused)
    fused.head.switch_to_deploy()
    return fused.eval()
