"""The published RepMobile classification head, as plain modules.

``RepMobileNeck`` is the published ``head`` (1x1 conv, BN, ReLU, then global
average pooling); ``RepMobileClassifier`` is the published ``classifier``
(an MLP, and with distillation a second MLP). Keys inside each module are the
published ones, so ``head.*`` and ``classifier.*`` load with ``strict=True``.
"""
from typing import List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..utils.fuse import (conv_params64, copy_params, fuse_conv_bn, fuse_conv_bn_in_sequential,
                          guard_checkpoint_form)
from .distillation import DistillationClassifier


def neck_channels(in_channels: int) -> int:
    """Width of the published head: ``max(1024, in_channels)``."""
    return max(1024, in_channels)


class RepMobileNeck(BaseModule, nn.Sequential):
    """1x1 conv + BN + ReLU + global average pooling (published ``head.0``, ``head.1``).

    Takes a tensor, or a tuple of backbone outputs (mmpretrain's neck convention,
    the last one is used, and a 1-tuple is returned). The deploy form folds the BN
    into the conv; the BN's index holds an ``nn.Identity``.
    """
    __jit_unused_properties__ = ['is_init']  # mmengine's setter takes any value

    def __init__(self,
                 in_channels: int,
                 out_channels: Optional[int] = None,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d', mode='fan_out', bias=0),
                dict(type='Constant', layer=['_BatchNorm'], val=1, bias=0),
            ]
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels or neck_channels(in_channels)
        self.deploy = deploy
        if deploy:
            layers = [nn.Conv2d(in_channels, self.out_channels, 1), nn.Identity()]
        else:
            layers = [nn.Conv2d(in_channels, self.out_channels, 1, bias=False),
                      nn.BatchNorm2d(self.out_channels)]
        layers += [nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        for layer in layers:
            self.append(layer)
        guard_checkpoint_form(self, 'RepMobile neck', '1.running_mean', '0.bias')

    @torch.jit.unused  # the timm net runs the layers itself (the pooling is optional there)
    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]):
        if isinstance(inputs, (tuple, list)):
            return (nn.Sequential.forward(self, inputs[-1]), )
        return nn.Sequential.forward(self, inputs)

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        fuse_conv_bn_in_sequential(self)
        self.deploy = True


def build_mlp(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Published classifier MLP: Linear, BN1d, ReLU, Dropout, Linear."""
    return nn.Sequential(
        nn.Linear(in_features, in_features, bias=False), nn.BatchNorm1d(in_features),
        nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(in_features, num_classes))


class RepMobileClassifier(DistillationClassifier):
    """Published ``classifier``: ``classifier`` MLP and optional ``classifier_dist`` MLP.

    The deploy form is one MLP whose hidden layer is the fused hidden layers side
    by side and whose output layer averages them: exactly the mean of both.
    """
    family = 'RepMobile'
    form_keys = ('classifier.1.running_mean', 'classifier.0.bias')

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 distillation: bool = False,
                 dropout: float = 0.2,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Normal', layer='Linear', std=0.001, bias=0),
                dict(type='Constant', layer=['_BatchNorm'], val=1, bias=0),
            ]
        super().__init__(init_cfg=init_cfg)
        self.init_classifier(in_channels, num_classes, distillation, deploy, dropout)

    def init_classifier(self, in_channels: int, num_classes: int, distillation: bool,
                        deploy: bool, dropout: float = 0.2):
        self.dropout = dropout
        super().init_classifier(in_channels, num_classes, distillation, deploy)

    def build_branch(self) -> nn.Module:
        return build_mlp(self.in_channels, self.num_classes, self.dropout)

    def build_fused(self, hidden: Optional[int] = None) -> nn.Module:
        hidden = hidden or self.in_channels * (2 if self.distillation else 1)
        return nn.Sequential(
            nn.Linear(self.in_channels, hidden), nn.Identity(), nn.ReLU(inplace=True),
            nn.Identity(), nn.Linear(hidden, self.num_classes))

    def merge_branches(self, branches: List[nn.Module]) -> nn.Module:
        hidden_w, hidden_b, out_w = [], [], []
        out_b = 0
        for mlp in branches:
            weight, bias = fuse_conv_bn(mlp[0], mlp[1])
            hidden_w.append(weight)
            hidden_b.append(bias)
            out_weight, out_bias = conv_params64(mlp[4])
            out_w.append(out_weight / len(branches))
            out_b = out_b + out_bias / len(branches)
        fused = self.build_fused(self.in_channels * len(branches)).to(branches[0][0].weight)
        copy_params(fused[0], torch.cat(hidden_w), torch.cat(hidden_b))
        copy_params(fused[4], torch.cat(out_w, 1), out_b)
        return fused
