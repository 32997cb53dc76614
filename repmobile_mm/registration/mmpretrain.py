"""mmpretrain registrations: the backbone, the published neck and a ClsHead."""
from typing import List, Optional, Tuple, Union

import torch
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS

from ..models import RepMobile, RepMobileClassifier, RepMobileNeck

MODELS.register_module(module=RepMobile)
MODELS.register_module(module=RepMobileNeck)


@MODELS.register_module()
class RepMobileClsHead(RepMobileClassifier, ClsHead):
    """The published RepMobile classifier (MLP, optional distillation MLP) as a ClsHead.

    Keys: ``classifier.*`` and ``classifier_dist.*`` as published. With
    ``distillation=True`` the training loss is ``(1 - alpha) * loss(cls, gt) +
    alpha * loss(dist, teacher)``, the teacher labels coming from each data
    sample's ``teacher_label`` (set by the distillation classifier); samples
    without one fall back to the ground truth. Evaluation uses the mean logits.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 distillation: bool = False,
                 distill_alpha: float = 0.5,
                 dropout: float = 0.2,
                 deploy: bool = False,
                 loss: dict = dict(type='CrossEntropyLoss', loss_weight=1.0),
                 topk: Union[int, Tuple[int]] = (1, ),
                 cal_acc: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Normal', layer='Linear', std=0.001, bias=0),
                dict(type='Constant', layer=['_BatchNorm'], val=1, bias=0),
            ]
        ClsHead.__init__(self, loss=loss, topk=topk, cal_acc=cal_acc, init_cfg=init_cfg)
        self.distill_alpha = distill_alpha
        self.init_classifier(in_channels, num_classes, distillation, dropout, deploy)

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
        loss_dist = self.loss_module(dist_score, teacher, avg_factor=dist_score.size(0))
        losses['loss'] = (1 - self.distill_alpha) * losses['loss'] + self.distill_alpha * loss_dist
        return losses
