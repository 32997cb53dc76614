"""Layers whose deploy form is one plain layer, under the published RepViT/RepNeXt keys.

``fuse()`` returns the plain layer (as the published ``replace_batchnorm`` and timm
do); :func:`.fuse.reparameterize_model` puts it in place.
"""
from typing import Optional

import torch
from torch import nn

from .fuse import fuse_bn_conv1x1, fuse_conv_bn, fused_layer_like
from .norm import build_norm2d


class Conv2dBN(nn.Sequential):
    """Conv2d without bias + BatchNorm (published ``Conv2d_BN``: keys ``c``, ``bn``)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1,
                 bn_weight_init: float = 1.,
                 norm_cfg: Optional[dict] = None):
        super().__init__()
        self.add_module('c', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                                       groups=groups, bias=False))
        self.add_module('bn', build_norm2d(norm_cfg or dict(type='BN'), out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        return fused_layer_like(self.c, *fuse_conv_bn(self.c, self.bn))


def conv_bn(*args, deploy: bool = False, **kwargs) -> nn.Module:
    """A ``Conv2dBN``, or in deploy form the plain conv (with bias) it fuses into."""
    module = Conv2dBN(*args, **kwargs)
    return module.fuse() if deploy else module


class BNLinear(nn.Sequential):
    """BatchNorm1d + Linear (published ``BN_Linear``: keys ``bn``, ``l``)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.add_module('bn', nn.BatchNorm1d(in_features))
        self.add_module('l', nn.Linear(in_features, out_features))
        nn.init.trunc_normal_(self.l.weight, std=0.02)
        nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        return fused_layer_like(self.l, *fuse_bn_conv1x1(self.bn, self.l))
