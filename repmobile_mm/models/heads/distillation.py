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

    ``branch_names`` are the published attribute names of the two branches (the
    fused branch keeps the first); ``form_keys`` are (a key only the training form
    has, one only the deploy form has), relative to this module, for the form guard.
    """
    family = ''
    __jit_unused_properties__ = ['is_init']  # mmengine's setter takes any value
    branch_names: Tuple[str, str] = ('classifier', 'classifier_dist')
    form_keys: Tuple[str, str] = ('', '')

    def init_classifier(self, in_channels: int, num_classes: int, distillation: bool,
                        deploy: bool):
        """Build the branches (apart from ``__init__`` so that mmpretrain's heads reuse it)."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f'num_classes must be a positive int; got {num_classes!r}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.distillation = distillation
        self.distilled_training = True  # training returns both logits (off: their mean)
        self.deploy = deploy
        main, dist = self.branch_names
        if deploy:
            setattr(self, main, self.build_fused())
        else:
            setattr(self, main, self.build_branch())
            if distillation:
                setattr(self, dist, self.build_branch())
        guard_checkpoint_form(self, f'{self.family} classifier', *self.form_keys)

    def build_branch(self) -> nn.Module:
        raise NotImplementedError

    def build_fused(self) -> nn.Module:
        """The deploy form's structure (weights come from a checkpoint)."""
        raise NotImplementedError

    def merge_branches(self, branches: List[nn.Module]) -> nn.Module:
        """One module computing the mean of the branches' logits, exactly."""
        raise NotImplementedError

    def branches(self) -> List[nn.Module]:
        """The classifier branch, and the distillation branch where there is one."""
        names = self.branch_names[:2 if self.distillation and not self.deploy else 1]
        return [getattr(self, name) for name in names]

    def classify(self, x: torch.Tensor):
        """Logits of pooled features; ``(cls, dist)`` in distillation training.

        The branch names are spelled out (TorchScript resolves literal names only);
        a family with other names overrides this method.
        """
        if hasattr(self, 'classifier_dist'):  # static for TorchScript
            return self.mean_logits(self.classifier(x), self.classifier_dist(x))
        else:
            return self.classifier(x)

    def mean_logits(self, logits: torch.Tensor, dist: torch.Tensor):
        """Both logits in (eager) distilled training, their mean otherwise."""
        if self.training and self.distilled_training and not torch.jit.is_scripting():
            return logits, dist
        return (logits + dist) / 2

    def forward(self, x: torch.Tensor):
        return self.classify(x)

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        fused = self.merge_branches(self.branches())
        main, dist = self.branch_names
        if self.distillation:
            delattr(self, dist)
        setattr(self, main, fused)
        self.deploy = True


class BNLinearClassifier(DistillationClassifier):
    """The RepViT classifier: BatchNorm1d + Linear branches (published ``classifier``
    and ``classifier_dist``, each with keys ``bn``, ``l``), fused into one Linear
    (key ``classifier``)."""
    family = 'BatchNorm1d + Linear'
    layer_names = ('bn', 'l')
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
        return BNLinear(self.in_channels, self.num_classes, self.layer_names)

    def build_fused(self) -> nn.Module:
        return nn.Linear(self.in_channels, self.num_classes)

    def merge_branches(self, branches: List[nn.Module]) -> nn.Module:
        folds = [fuse_bn_conv1x1(*branch.children()) for branch in branches]
        weight = sum(w for w, _ in folds) / len(folds)
        bias = sum(b for _, b in folds) / len(folds)
        return fused_layer_like(list(branches[0].children())[1], weight, bias)


class NormLinearClassifier(BNLinearClassifier):
    """The RepNeXt classifier: the same branches under RepNeXt's published names
    (``head`` and ``head_dist``, each with keys ``norm``, ``linear``), fused into one
    Linear (key ``head``)."""
    branch_names = ('head', 'head_dist')
    layer_names = ('norm', 'linear')
    form_keys = ('head.norm.running_mean', 'head.bias')

    def classify(self, x: torch.Tensor):
        if hasattr(self, 'head_dist'):  # static for TorchScript
            return self.mean_logits(self.head(x), self.head_dist(x))
        else:
            return self.head(x)
