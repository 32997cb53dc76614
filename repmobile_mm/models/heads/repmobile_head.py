"""The published RepMobile classification head, as plain modules.

``RepMobileNeck`` is the published ``head`` (1x1 conv, BN, ReLU, then global
average pooling); ``RepMobileClassifier`` is the published ``classifier``
(an MLP, and with distillation a second MLP). Keys inside each module are the
published ones, so ``head.*`` and ``classifier.*`` load with ``strict=True``.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..utils.fuse import (conv_params64, copy_params, fuse_conv_bn, fuse_conv_bn_in_sequential,
                          guard_checkpoint_form)


def neck_channels(in_channels: int) -> int:
    """Width of the published head: ``max(1024, in_channels)``."""
    return max(1024, in_channels)


class RepMobileNeck(BaseModule, nn.Sequential):
    """1x1 conv + BN + ReLU + global average pooling (published ``head.0``, ``head.1``).

    Takes a tensor, or a tuple of backbone outputs (mmpretrain's neck convention,
    the last one is used, and a 1-tuple is returned). The deploy form folds the BN
    into the conv; the BN's index holds an ``nn.Identity``.
    """

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
        guard_checkpoint_form(self, '1', 'RepMobile neck')

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


class RepMobileClassifier(BaseModule):
    """Published ``classifier``: ``classifier`` MLP and optional ``classifier_dist`` MLP.

    With distillation, training returns both logits ``(cls, dist)`` and evaluation
    their mean. The deploy form is one MLP whose hidden layer is the fused hidden
    layers side by side and whose output layer averages them: exactly that mean.
    """

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
        self.init_classifier(in_channels, num_classes, distillation, dropout, deploy)

    def init_classifier(self, in_channels: int, num_classes: int, distillation: bool,
                        dropout: float, deploy: bool):
        """Build the layers (separate from ``__init__`` so that mmpretrain's head can reuse it)."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int; got {num_classes!r}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.distillation = distillation
        self.deploy = deploy
        if deploy:
            hidden = in_channels * (2 if distillation else 1)
            self.classifier = nn.Sequential(
                nn.Linear(in_channels, hidden), nn.Identity(), nn.ReLU(inplace=True),
                nn.Identity(), nn.Linear(hidden, num_classes))
        else:
            self.classifier = build_mlp(in_channels, num_classes, dropout)
            if distillation:
                self.classifier_dist = build_mlp(in_channels, num_classes, dropout)
        guard_checkpoint_form(self, 'classifier.1', 'RepMobile classifier')

    def classify(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Logits of pooled features; ``(cls, dist)`` in distillation training."""
        logits = self.classifier(x)
        if self.deploy or not self.distillation:
            return logits
        dist = self.classifier_dist(x)
        if self.training:
            return logits, dist
        return (logits + dist) / 2

    def forward(self, x: torch.Tensor):
        return self.classify(x)

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        mlps = [self.classifier] + ([self.classifier_dist] if self.distillation else [])
        hidden_w, hidden_b, out_w = [], [], []
        out_b = 0
        for mlp in mlps:
            weight, bias = fuse_conv_bn(mlp[0], mlp[1])
            hidden_w.append(weight)
            hidden_b.append(bias)
            out_weight, out_bias = conv_params64(mlp[4])
            out_w.append(out_weight / len(mlps))
            out_b = out_b + out_bias / len(mlps)
        ref = self.classifier[0].weight
        if self.distillation:
            del self.classifier_dist
        hidden = self.in_channels * len(mlps)
        self.classifier = nn.Sequential(
            copy_params(nn.Linear(self.in_channels, hidden).to(ref), torch.cat(hidden_w),
                        torch.cat(hidden_b)), nn.Identity(), nn.ReLU(inplace=True),
            nn.Identity(),
            copy_params(nn.Linear(hidden, self.num_classes).to(ref), torch.cat(out_w, 1),
                        out_b))
        self.deploy = True
