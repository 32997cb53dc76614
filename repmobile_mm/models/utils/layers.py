"""Layers whose deploy form is one plain layer, under the published RepViT/RepNeXt keys.

``fuse()`` returns the plain layer (as the published ``replace_batchnorm`` and timm
do); :func:`.fuse.reparameterize_model` puts it in place.
"""
from typing import Optional, Tuple

import torch
from torch import nn

from .fuse import fuse_bn_conv1x1, fuse_conv_bn, fused_layer_like
from .norm import build_norm2d


class Conv2dBN(nn.Sequential):
    """Conv2d without bias + BatchNorm: RepViT's ``Conv2d_BN`` (keys ``c``, ``bn``),
    RepNeXt's ``ConvNorm`` (``names=('conv', 'norm')``)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 groups: int = 1,
                 bn_weight_init: float = 1.,
                 norm_cfg: Optional[dict] = None,
                 names: Tuple[str, str] = ('c', 'bn')):
        super().__init__()
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                         bias=False)
        bn = build_norm2d(norm_cfg or dict(type='BN'), out_channels)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0)
        self.add_module(names[0], conv)
        self.add_module(names[1], bn)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv, bn = self.children()
        return fused_layer_like(conv, *fuse_conv_bn(conv, bn))


def conv_bn(*args, deploy: bool = False, **kwargs) -> nn.Module:
    """A ``Conv2dBN``, or in deploy form the plain conv (with bias) it fuses into."""
    module = Conv2dBN(*args, **kwargs)
    return module.fuse() if deploy else module


def patch_stem(in_channels: int, out_channels: int, norm_cfg: Optional[dict], deploy: bool,
               names: Tuple[str, str] = ('c', 'bn')) -> nn.Sequential:
    """RepViT's and RepNeXt's stem: two stride-2 3x3 ``Conv2dBN`` (to half the width,
    then to the full width) with a GELU between (keys ``0``, ``2``)."""
    half = out_channels // 2
    return nn.Sequential(
        conv_bn(in_channels, half, 3, 2, 1, norm_cfg=norm_cfg, names=names, deploy=deploy),
        nn.GELU(),
        conv_bn(half, out_channels, 3, 2, 1, norm_cfg=norm_cfg, names=names, deploy=deploy))


class BNLinear(nn.Sequential):
    """BatchNorm1d + Linear: RepViT's ``BN_Linear`` (keys ``bn``, ``l``), RepNeXt's
    ``NormLinear`` (``names=('norm', 'linear')``)."""

    def __init__(self, in_features: int, out_features: int,
                 names: Tuple[str, str] = ('bn', 'l')):
        super().__init__()
        linear = nn.Linear(in_features, out_features)
        nn.init.trunc_normal_(linear.weight, std=0.02)
        nn.init.constant_(linear.bias, 0)
        self.add_module(names[0], nn.BatchNorm1d(in_features))
        self.add_module(names[1], linear)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        bn, linear = self.children()
        return fused_layer_like(linear, *fuse_bn_conv1x1(bn, linear))
