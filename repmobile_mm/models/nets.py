"""The whole published classifier of each family as one plain module (timm's view of it)."""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from timm.models._features import feature_take_indices
from torch import nn

from .backbones import RepMobile, RepNeXt, RepViT
from .heads import BNLinearClassifier, NormLinearClassifier, RepMobileClassifier, RepMobileNeck

GLOBAL_POOLS = ('', 'avg')


class ClassifierNet:
    """timm's model contract over a family's backbone (the mixin goes first).

    ``forward_features`` is the last stage (``num_features`` channels),
    ``forward_head`` pools it (``head_hidden_size`` features, what ``pre_logits``
    returns) and classifies; ``num_classes=0`` leaves the classifier out and
    ``global_pool=''`` the pooling. The classifier sits under ``classifier_name``;
    ``fused_parts`` fuse after the backbone. Forwards are scriptable and
    traceable in both forms. With a distillation branch, training returns the
    mean logits as timm's distilled models do; ``set_distilled_training()`` makes
    it return both, ``(cls, dist)``, for a distillation loss.
    """
    classifier_name = 'classifier'
    fused_parts: Tuple[str, ...] = ('classifier', )

    def init_net(self, num_classes: int, distillation: bool, global_pool: str, in_chans: int,
                 feature_modules: List[str]):
        """What every family's net sets after building its backbone and neck."""
        self.in_chans = in_chans
        self.distillation = distillation
        self.global_pool = self.check_global_pool(global_pool)
        self.num_features = self.dims[-1]
        self.last_stage = self.num_stages - 1
        self.feature_info = [
            dict(num_chs=dim, reduction=4 * 2**i, module=module)
            for i, (dim, module) in enumerate(zip(self.dims, feature_modules))
        ]
        self.num_classes = num_classes
        setattr(self, self.classifier_name, self.classifier_for(num_classes))
        self.set_distilled_training(False)

    @staticmethod
    def check_global_pool(global_pool: str) -> str:
        if global_pool not in GLOBAL_POOLS:  # an AssertionError, as timm's contract has it
            raise AssertionError(f"global_pool must be 'avg' or '' (no pooling); got "
                                 f'{global_pool!r}')
        return global_pool

    def classifier_for(self, num_classes: int) -> nn.Module:
        """The family's classifier for ``num_classes``, an identity for 0."""
        return self.build_classifier(num_classes) if num_classes else nn.Identity()

    def build_classifier(self, num_classes: int) -> nn.Module:
        """The family's classifier for ``num_classes`` (at least 1)."""
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x, [], self.last_stage)[0]

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        # a 4-D mean (global pooling, which XNNPACK delegates; a 2-D one it does not)
        return x.mean((2, 3), keepdim=True).flatten(1) if self.global_pool == 'avg' else x

    def forward(self, x: torch.Tensor):
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return getattr(self, self.classifier_name)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        """A new classifier for ``num_classes`` (none for 0), on the model's device and dtype."""
        if global_pool is not None:
            self.global_pool = self.check_global_pool(global_pool)
        reference = next(self.parameters())
        classifier = self.classifier_for(num_classes)
        classifier.to(device=reference.device, dtype=reference.dtype).train(self.training)
        self.num_classes = num_classes
        setattr(self, self.classifier_name, classifier)
        self.set_distilled_training(self.distilled_training)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.with_cp = enable

    @torch.jit.ignore
    def set_distilled_training(self, enable: bool = True):
        """Training returns ``(cls, dist)`` (for a distillation loss), not their mean."""
        self.distilled_training = enable
        classifier = self.get_classifier()
        if hasattr(classifier, 'distilled_training'):
            classifier.distilled_training = enable

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: Optional[Union[int, List[int]]] = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = 'NCHW',
        intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """The stage outputs ``indices`` (the last n for an int, all for None) and the
        final features; ``stop_early`` runs no stage past the last one taken.
        ``norm`` is accepted for timm's interface: no norm follows the stages."""
        if output_fmt != 'NCHW':
            raise ValueError(f"output_fmt must be 'NCHW'; got '{output_fmt}'")
        take_indices, max_index = feature_take_indices(self.last_stage + 1, indices)
        final, intermediates = self.forward_stages(
            x, take_indices, max_index if stop_early else self.last_stage)
        if intermediates_only:
            return intermediates
        return final, intermediates

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1,
                                  prune_norm: bool = False, prune_head: bool = True):
        """Drop the stages past the last of ``indices`` and, with them or with
        ``prune_head``, the neck and classifier (features then end at the tap)."""
        take_indices, max_index = feature_take_indices(self.last_stage + 1, indices)
        if max_index < self.last_stage:
            self.prune_stages(max_index)
            self.last_stage = max_index
            self.num_features = self.feature_info[max_index]['num_chs']
            prune_head = True
        if prune_head:
            self.prune_neck()
            self.reset_classifier(0, '')
        return take_indices

    def prune_neck(self):
        """Remove what runs between the last stage and the pooling."""
        self.head_hidden_size = self.num_features

    @torch.no_grad()
    def switch_to_deploy(self):
        super().switch_to_deploy()
        for name in self.fused_parts:
            part = getattr(self, name)
            if hasattr(part, 'switch_to_deploy'):  # not a removed classifier
                part.switch_to_deploy()


class RepMobileNet(ClassifierNet, RepMobile):
    """RepMobile backbone + published head and classifier under the published keys.

    A published classification checkpoint (the dict under its ``model`` key) loads
    into this module with ``strict=True``. The published neck (``head``: 1x1 conv,
    BN, ReLU, pooling) widens the last stage to ``head_hidden_size`` before pooling.
    """
    fused_parts = ('head', 'classifier')

    def __init__(self,
                 arch: Union[str, dict] = 'S',
                 num_classes: int = 1000,
                 distillation: bool = False,
                 drop_rate: float = 0.2,
                 deploy: bool = False,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.drop_rate = drop_rate
        self.head = RepMobileNeck(self.dims[-1], deploy=deploy)
        self.head_hidden_size = self.head.out_channels
        self.init_net(num_classes, distillation, global_pool, in_chans,
                      [f'layer{i}' for i in range(self.num_stages)])

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups (layer-wise decay): the stem, then a stage or a block."""
        return dict(stem=r'^stem', blocks=r'^layer(\d+)' if coarse else r'^layer(\d+)\.(\d+)')

    def build_classifier(self, num_classes: int) -> nn.Module:
        return RepMobileClassifier(self.head_hidden_size, num_classes, self.distillation,
                                   self.drop_rate, deploy=self.deploy)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        for index, layer in enumerate(self.head):
            if index < 3:  # 1x1 conv, BN, ReLU; the pooling follows global_pool
                x = layer(x)
        x = self.pool(x)
        return x if pre_logits else self.classifier(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        # the published neck's adaptive pooling (what MAC counters see), not a mean
        return F.adaptive_avg_pool2d(x, 1).flatten(1) if self.global_pool == 'avg' else x

    def prune_neck(self):
        self.head = nn.Sequential()
        super().prune_neck()


class PooledClassifierNet(ClassifierNet):
    """A family whose classifier takes the pooled last stage (RepViT, RepNeXt): dropout
    on the pooled features (timm's ``drop_rate``), then ``classifier_cls``."""
    classifier_cls: type

    def init_pooled_net(self, num_classes: int, distillation: bool, drop_rate: float,
                        global_pool: str, in_chans: int, feature_modules: List[str]):
        self.head_hidden_size = self.dims[-1]
        self.head_drop = nn.Dropout(drop_rate)
        self.init_net(num_classes, distillation, global_pool, in_chans, feature_modules)

    def build_classifier(self, num_classes: int) -> nn.Module:
        return self.classifier_cls(self.head_hidden_size, num_classes, self.distillation,
                                   deploy=self.deploy)


class RepViTNet(PooledClassifierNet, RepViT):
    """RepViT backbone + published classifier (global average pooling, BatchNorm1d +
    Linear, optional distillation branch) under the published keys (``features.*``,
    ``classifier.classifier.*``): a published checkpoint's ``model`` dict of either
    release loads with ``strict=True``.
    """
    classifier_cls = BNLinearClassifier

    def __init__(self,
                 arch: Union[str, dict] = 'm0_9',
                 num_classes: int = 1000,
                 distillation: bool = False,
                 drop_rate: float = 0.,
                 deploy: bool = False,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.init_pooled_net(num_classes, distillation, drop_rate, global_pool, in_chans,
                             [f'features.{end}' for end in self.stage_ends])

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the stem (``features.0``), then each block (the
        published ``features`` are one flat list, so coarse groups are blocks too)."""
        return dict(stem=r'^features\.0\.', blocks=r'^features\.(\d+)')

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.classifier(x)


class RepNeXtNet(PooledClassifierNet, RepNeXt):
    """RepNeXt backbone + published classifier (mean pooling, ``head.head`` and
    ``head.head_dist`` NormLinear branches) under the published keys: a published
    checkpoint loads with ``strict=True``. The published model always has the
    distillation branch, hence ``distillation=True`` by default.
    """
    classifier_name = 'head'
    classifier_cls = NormLinearClassifier
    fused_parts = ('head', )

    def __init__(self,
                 arch: Union[str, dict] = 'm1',
                 num_classes: int = 1000,
                 distillation: bool = True,
                 drop_rate: float = 0.,
                 deploy: bool = False,
                 in_chans: int = 3,
                 global_pool: str = 'avg',
                 **kwargs):
        super().__init__(arch, out_indices=(3, ), deploy=deploy, in_channels=in_chans, **kwargs)
        self.init_pooled_net(num_classes, distillation, drop_rate, global_pool, in_chans,
                             [f'stages.{i}' for i in range(self.num_stages)])

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the stem, then a stage, or its downsample and blocks."""
        return dict(stem=r'^stem', blocks=r'^stages\.(\d+)' if coarse else [
            (r'^stages\.(\d+)\.downsample', (0, )), (r'^stages\.(\d+)\.blocks\.(\d+)', None)])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)
