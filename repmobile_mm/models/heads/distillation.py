"""Classifiers with an optional DeiT distillation branch, and their fused form.

A published classifier is a ``classifier`` branch and, with distillation, a
``classifier_dist`` branch on the same pooled features. Distillation training
returns both logits ``(cls, dist)``, evaluation their mean; the deploy form is one
branch that computes exactly that mean. Each family states its branch.
"""
from typing import List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import nn

from ..utils.fuse import fuse_bn_conv1x1, fused_layer_like, guard_checkpoint_form
from ..utils.layers import BNLinear


class DistillationClassifier(BaseModule):
    """Base: ``build_branch``, ``build_fused`` and ``merge_branches`` make a family's head.

    ``form_keys`` are (a key only the training form has, one only the deploy form
    has), relative to this module, for the form guard.
    """
    family = ''
    form_keys: Tuple[str, str] = ('', '')

    def init_classifier(self, in_channels: int, num_classes: int, distillation: bool,
                        deploy: bool):
        """Build the branches (apart from ``__init__`` so that mmpretrain's heads reuse it)."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int; got {num_classes!r}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.distillation = distillation
        self.deploy = deploy
        if deploy:
            self.classifier = self.build_fused()
        else:
            self.classifier = self.build_branch()
            if distillation:
                self.classifier_dist = self.build_branch()
        guard_checkpoint_form(self, f'{self.family} classifier', *self.form_keys)

    def build_branch(self) -> nn.Module:
        raise NotImplementedError

    def build_fused(self) -> nn.Module:
        """The deploy form's structure (weights come from a checkpoint)."""
        raise NotImplementedError

    def merge_branches(self, branches: List[nn.Module]) -> nn.Module:
        """One module computing the mean of the branches' logits, exactly."""
        raise NotImplementedError

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
        branches = [self.classifier] + ([self.classifier_dist] if self.distillation else [])
        fused = self.merge_branches(branches)
        if self.distillation:
            del self.classifier_dist
        self.classifier = fused
        self.deploy = True


class BNLinearClassifier(DistillationClassifier):
    """The RepViT / RepNeXt classifier: BatchNorm1d + Linear branches (published
    ``classifier`` and ``classifier_dist``, each with keys ``bn``, ``l``), fused into
    one Linear (key ``classifier``)."""
    family = 'BatchNorm1d + Linear'
    form_keys = ('classifier.bn.running_mean', 'classifier.bias')

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 distillation: bool = False,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.init_classifier(in_channels, num_classes, distillation, deploy)

    def build_branch(self) -> nn.Module:
        return BNLinear(self.in_channels, self.num_classes)

    def build_fused(self) -> nn.Module:
        return nn.Linear(self.in_channels, self.num_classes)

    def merge_branches(self, branches: List[nn.Module]) -> nn.Module:
        folds = [fuse_bn_conv1x1(branch.bn, branch.l) for branch in branches]
        weight = sum(w for w, _ in folds) / len(folds)
        bias = sum(b for _, b in folds) / len(folds)
        return fused_layer_like(branches[0].l, weight, bias)
