"""mmpretrain layer: the published heads and hard distillation (the backbones and the
neck are registered by ``import repmobile_mm``, in mmengine's root registry), and the
classification models in mmpretrain's model hub (:func:`register_model_index`).

Classification configs import this module through ``custom_imports``."""
import os.path as osp
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.runner.checkpoint import load_checkpoint
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from ..models import BNLinearClassifier, NormLinearClassifier, RepMobileClassifier


class DistillationHeadMixin:
    """Makes a family's classifier (a ``DistillationClassifier``) an mmpretrain ClsHead:
    ``class Head(DistillationHeadMixin, TheClassifier, ClsHead)``, in that order, so
    that ``ClsHead``'s initialisation chain ends in ``BaseModule``.

    With ``distillation=True`` the training loss is ``(1 - alpha) * loss(cls, gt) +
    alpha * cross_entropy(dist, teacher)``, the teacher labels coming from each data
    sample's ``teacher_label`` (set by ``DistillationImageClassifier``); samples
    without one fall back to the ground truth. Evaluation uses the mean logits.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distillation: bool = False,
                 distill_alpha: float = 0.5,
                 deploy: bool = False,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None,
                 **classifier_kwargs):
        ClsHead.__init__(self, loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        self.distill_alpha = distill_alpha
        self.init_classifier(in_channels, num_classes, distillation, deploy, **classifier_kwargs)

    def forward(self, feats: Tuple[torch.Tensor]):
        return self.classify(self.pre_logits(feats))

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List, **kwargs) -> dict:
        scores = self(feats)
        if not isinstance(scores, tuple):
            return self._get_loss(scores, data_samples, **kwargs)
        cls_score, dist_score = scores
        losses = self._get_loss(cls_score, data_samples, **kwargs)
        teacher = torch.cat([
            s.teacher_label if 'teacher_label' in s else s.gt_label for s in data_samples
        ])
        # DeiT's hard distillation: plain cross-entropy on the teacher's arg-max.
        loss_dist = F.cross_entropy(dist_score, teacher)
        losses['loss'] = (1 - self.distill_alpha) * losses['loss'] + self.distill_alpha * loss_dist
        return losses


@MODELS.register_module()
class RepMobileClsHead(DistillationHeadMixin, RepMobileClassifier, ClsHead):
    """The published RepMobile classifier (MLP, optional distillation MLP); keys
    ``classifier.*`` and ``classifier_dist.*`` as published."""

    def __init__(self, num_classes: int, in_channels: int, dropout: float = 0.2,
                 init_cfg: Optional[Union[dict, list]] = None, **kwargs):
        if init_cfg is None:
            init_cfg = [
                dict(type='Normal', layer='Linear', std=0.001, bias=0),
                dict(type='Constant', layer=['_BatchNorm'], val=1, bias=0),
            ]
        super().__init__(num_classes, in_channels, init_cfg=init_cfg, dropout=dropout, **kwargs)


@MODELS.register_module()
class BNLinearClsHead(DistillationHeadMixin, BNLinearClassifier, ClsHead):
    """The RepViT classifier on pooled features (mmpretrain's ``GlobalAveragePooling``
    neck): BatchNorm1d + Linear, optional distillation branch; keys ``classifier.bn``,
    ``classifier.l`` and ``classifier_dist.*`` as published. Fuses into one Linear."""


@MODELS.register_module()
class NormLinearClsHead(DistillationHeadMixin, NormLinearClassifier, ClsHead):
    """The RepNeXt classifier: as ``BNLinearClsHead`` under RepNeXt's published keys
    ``head.norm``, ``head.linear`` and ``head_dist.*``."""


@MODELS.register_module()
class DistillationImageClassifier(ImageClassifier):
    """ImageClassifier trained with hard distillation from a frozen teacher (DeiT style).

    The teacher sees the same preprocessed batch, always in eval mode and without
    gradients; its arg-max labels reach the head as ``teacher_label`` (see
    ``RepMobileClsHead``). The teacher is built by ``init_weights``, which only
    training runs (mmengine's ``Runner.train``): building the model to test, fuse or
    export it does not build the teacher (RegNetY-16GF: 84M parameters). It is not part
    of the state dict: checkpoints hold the student only. ``teacher=None`` makes this a
    plain ImageClassifier (deploy configs, evaluation).

    Args:
        teacher (dict, optional): teacher model config, e.g.
            ``dict(type='TimmClassifier', model_name='regnety_160')``.
        teacher_checkpoint (str, optional): teacher weights, loaded strictly by
            ``init_weights``.
        **kwargs: the ImageClassifier arguments (backbone, neck, head, ...).
    """

    def __init__(self, teacher: Optional[dict] = None,
                 teacher_checkpoint: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self.teacher_cfg = teacher
        self.teacher_checkpoint = teacher_checkpoint
        self.teacher = None
        if teacher is not None:
            self._register_state_dict_hook(_drop_teacher_keys)
            self.register_load_state_dict_post_hook(_ignore_missing_teacher_keys)

    def init_weights(self):
        super().init_weights()
        if self.teacher_cfg is None:
            return
        if not self.teacher_checkpoint:
            raise ValueError('distillation needs trained teacher weights: set '
                             'model.teacher_checkpoint to the teacher checkpoint path')
        print_log(f'loading the distillation teacher from {self.teacher_checkpoint}',
                  logger='current')
        teacher = MODELS.build(self.teacher_cfg)
        load_checkpoint(teacher, self.teacher_checkpoint, map_location='cpu', strict=True)
        teacher.requires_grad_(False)
        # the runner has placed the student by now: the teacher goes where it is
        self.teacher = teacher.to(next(self.parameters()).device).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        if self.teacher_cfg is not None and self.teacher is None:
            raise RuntimeError('the distillation teacher is built by init_weights() (as '
                               "mmengine's Runner.train calls it): call it before training")
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(inputs, mode='tensor')
            for sample, label in zip(data_samples, teacher_logits.argmax(dim=1, keepdim=True)):
                sample.set_field(label, 'teacher_label')
        return super().loss(inputs, data_samples)


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(f'{prefix}teacher.')]:
        del state_dict[key]
    return state_dict


def _ignore_missing_teacher_keys(module, incompatible_keys):
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not k.startswith('teacher.')]


def register_model_index() -> None:
    """Our classification metafiles in mmpretrain's model hub, so that
    ``mmpretrain.list_models('*repvit*')``, ``get_model(NAME, pretrained=True)`` and
    ``ImageClassificationInferencer(NAME)`` know them by name as they know mmpretrain's
    own; the configs are read from the package's ``.mim`` (or, in a tree that was never
    installed, beside the package)."""
    from mmpretrain.apis import ModelHub
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    root = osp.join(package, '.mim')
    if not osp.isdir(osp.join(root, 'classification')):
        root = osp.dirname(package)
    for family in ('repmobile', 'repvit', 'repnext'):
        ModelHub.register_model_index(
            osp.join(root, 'classification', 'configs', family, 'metafile.yml'),
            config_prefix=root)


register_model_index()
