"""The whole published classifier of each family as one plain module (timm's view of it)."""
from typing import Tuple, Union

import torch

from .backbones import RepMobile, RepNeXt, RepViT
from .heads import (BNLinearClassifier, NormLinearClassifier, RepMobileClassifier,
                    RepMobileNeck)


class ClassifierNet:
    """timm's classifier interface over a family's backbone (the mixin goes first).

    ``forward_features`` is the last stage, ``pool`` turns it into the pooled
    features, ``classifier`` into logits; ``fused_parts`` fuse after the backbone.
    """
    fused_parts: Tuple[str, ...] = ('classifier', )

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[-1]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        x = self.pool(x)
        return x if pre_logits else self.get_classifier()(x)

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    def get_classifier(self):
        return getattr(self, self.fused_parts[-1])

    @torch.no_grad()
    def switch_to_deploy(self):
        super().switch_to_deploy()
        for name in self.fused_parts:
            getattr(self, name).switch_to_deploy()


class RepMobileNet(ClassifierNet, RepMobile):
    """RepMobile backbone + published head and classifier under the published keys.

    A published classification checkpoint (the dict under its ``model`` key) loads
    into this module with ``strict=True``.
    """
    fused_parts = ('head', 'classifier')

    def __init__(self,
                 arch: Union[str, dict] = 'S',
                 num_classes: int = 1000,
                 distillation: bool = False,
                 drop_rate: float = 0.2,
                 deploy: bool = False,
                 in_chans: int = 3,
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.head = RepMobileNeck(self.dims[-1], deploy=deploy)
        self.num_features = self.head.out_channels
        self.classifier = RepMobileClassifier(self.num_features, num_classes, distillation,
                                              drop_rate, deploy=deploy)
        self.num_classes = num_classes
        self.feature_info = [
            dict(num_chs=dim, reduction=4 * 2**i, module=f'layer{i}')
            for i, dim in enumerate(self.dims)
        ]

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)  # the published 1x1 conv head, then global pooling


class RepViTNet(ClassifierNet, RepViT):
    """RepViT backbone + published classifier (global average pooling, BatchNorm1d +
    Linear, optional distillation branch) under the published keys (``features.*``,
    ``classifier.classifier.*``): a published checkpoint's ``model`` dict of either
    release loads with ``strict=True``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'm0_9',
                 num_classes: int = 1000,
                 distillation: bool = False,
                 deploy: bool = False,
                 in_chans: int = 3,
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.num_features = self.dims[-1]
        self.classifier = BNLinearClassifier(self.num_features, num_classes, distillation,
                                             deploy=deploy)
        self.num_classes = num_classes
        self.feature_info = [
            dict(num_chs=dim, reduction=4 * 2**i, module=f'features.{end}')
            for i, (dim, end) in enumerate(zip(self.dims, self.stage_ends))
        ]

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


class RepNeXtNet(ClassifierNet, RepNeXt):
    """RepNeXt backbone + published classifier (mean pooling, ``head.head`` and
    ``head.head_dist`` NormLinear branches) under the published keys: a published
    checkpoint loads with ``strict=True``. The published model always has the
    distillation branch, hence ``distillation=True`` by default.
    """
    fused_parts = ('head', )

    def __init__(self,
                 arch: Union[str, dict] = 'm1',
                 num_classes: int = 1000,
                 distillation: bool = True,
                 deploy: bool = False,
                 in_chans: int = 3,
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.num_features = self.dims[-1]
        self.head = NormLinearClassifier(self.num_features, num_classes, distillation,
                                         deploy=deploy)
        self.num_classes = num_classes
        self.feature_info = [
            dict(num_chs=dim, reduction=4 * 2**i, module=f'stages.{i}')
            for i, dim in enumerate(self.dims)
        ]

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))
