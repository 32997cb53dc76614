"""The one place that knows the three tasks.

A config's ``default_scope`` names its library (mmpretrain, mmdet or mmseg) and so its
task; :func:`task_of` maps it to a :class:`Task`, which says what differs between
classifiers, detectors and segmentors wherever the package builds, compares, exports,
evaluates, counts or draws a model. A config without a known scope is refused here,
with one message.
"""
import copy
import importlib
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import nn

from ..errors import ConfigError


class Logits(nn.Module):
    """A model's ``mode='tensor'`` output (a classifier's logits) as a plain forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.classifier = model

    def forward(self, x):
        return self.classifier(x, mode='tensor')


class SegLogits(nn.Module):
    """An mmseg segmentor's logits at the input's size (what its ``predict`` computes
    before mmseg's ``postprocess_result`` takes padding and the original size off).

    mmseg's ``Upsample`` turns its output size into Python ints, which a trace freezes
    at the export size (an ONNX file then computes wrong logits at any other size):
    each one with an integer scale factor is replaced by ``nn.Upsample`` at that
    factor, the same interpolation with a size that stays dynamic.
    """

    def __init__(self, segmentor: nn.Module):
        super().__init__()
        self.segmentor = copy.deepcopy(segmentor)
        from mmseg.models.utils import Upsample
        for name, module in list(self.segmentor.named_modules()):
            if (isinstance(module, Upsample) and not module.size
                    and float(module.scale_factor).is_integer()):
                self.segmentor.set_submodule(name, nn.Upsample(
                    scale_factor=module.scale_factor, mode=module.mode,
                    align_corners=module.align_corners))

    def forward(self, x):
        logits = self.segmentor(x, mode='tensor')
        return F.interpolate(logits, size=x.shape[2:], mode='bilinear',
                             align_corners=self.segmentor.decode_head.align_corners)


class DetectorFeatures(nn.Module):
    """A detector's backbone and neck (``extract_feat``) as one module: mmdet's
    two-stage heads need image metadata that an input tensor alone does not give."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        return self.detector.extract_feat(x)


class Task:
    """What a classifier's, detector's or segmentor's config needs that the others' do not.

    Attributes:
        scope: the config's ``default_scope`` (the library).
        name: the task, as the READMEs name it.
        parts: what :meth:`comparable` runs, for printed figures ('model', 'backbone+neck').
        whole_export: whether the whole model exports (with ``segmentor_logits`` for a
            segmentor), not only its backbone: what int8 quantization evaluates.
    """
    scope = name = ''
    parts = 'model'
    whole_export = True

    def registry(self):
        """The library's ``MODELS`` registry (imports the library)."""
        return importlib.import_module(f'{self.scope}.registry').MODELS

    def comparable(self, model: nn.Module) -> nn.Module:
        """The part of ``model`` whose outputs a fused copy must reproduce and whose cost
        is counted and timed: all of it, run with ``mode='tensor'``."""
        return Logits(model)

    def export_net(self, model: nn.Module, backbone_only: bool = False,
                   segmentor_logits: bool = False) -> Tuple[nn.Module, int, bool]:
        """``(net, number of outputs, whether the outputs are maps)`` to export: a
        classifier's logits, a segmentor's logits (``segmentor_logits``), or else the
        backbone's stage outputs (detectors, segmentors, or ``backbone_only``)."""
        whole = None if backbone_only else self._whole_net(model, segmentor_logits)
        if whole is not None:
            return whole.eval(), 1, isinstance(whole, SegLogits)
        return model.backbone, len(model.backbone.out_indices), True

    def _whole_net(self, model: nn.Module, segmentor_logits: bool) -> Optional[nn.Module]:
        return None

    def predictions(self, model: nn.Module, logits: torch.Tensor, samples: List) -> List:
        """Data samples with the predictions of ``logits`` (an exported model's output),
        through the model's own post-processing."""
        raise NotImplementedError

    def dataloader_defaults(self, loader: dict) -> None:
        """What the library's own train.py/test.py adds to a dataloader."""

    def draw(self, cfg: Config, checkpoint: str, images: Sequence[str], score_thr: float
             ) -> Tuple[list, List[str]]:
        """The library inferencer's pictures of ``images`` and a caption for each."""
        raise NotImplementedError


class Classification(Task):
    scope, name = 'mmpretrain', 'classification'

    def _whole_net(self, model, segmentor_logits):
        return Logits(model)

    def predictions(self, model, logits, samples):
        return model.head._get_predictions(logits, samples)

    def dataloader_defaults(self, loader):
        loader.setdefault('collate_fn', dict(type='default_collate'))

    def draw(self, cfg, checkpoint, images, score_thr):
        import numpy as np
        from mmpretrain.apis import ImageClassificationInferencer
        from PIL import Image
        results = ImageClassificationInferencer(cfg, pretrained=checkpoint, device='cpu')(images)
        panels = [np.asarray(Image.open(image).convert('RGB')) for image in images]
        captions = [f"{r.get('pred_class', r['pred_label'])} ({r['pred_score']:.2f})"
                    for r in results]
        return panels, captions


class Detection(Task):
    scope, name = 'mmdet', 'detection'
    parts = 'backbone+neck'
    whole_export = False

    def comparable(self, model):
        return DetectorFeatures(model)

    def draw(self, cfg, checkpoint, images, score_thr):
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(cfg, weights=checkpoint, device='cpu', show_progress=False)
        panels = inferencer(images, return_vis=True, no_save_vis=True,
                            pred_score_thr=score_thr)['visualization']
        return panels, [osp.basename(image) for image in images]


class Segmentation(Task):
    scope, name = 'mmseg', 'segmentation'

    def _whole_net(self, model, segmentor_logits):
        return SegLogits(model) if segmentor_logits else None

    def predictions(self, model, logits, samples):
        return model.postprocess_result(logits, samples)

    def draw(self, cfg, checkpoint, images, score_thr):
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(cfg, weights=checkpoint, device='cpu')
        panels = inferencer(images, return_vis=True)['visualization']
        return panels, [osp.basename(image) for image in images]


TASKS = {task.scope: task for task in (Classification(), Detection(), Segmentation())}


def task_of(cfg: Config, path: Optional[str] = None) -> Task:
    """The task of a config, by its ``default_scope``; a :class:`ConfigError` for any other."""
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        where = f'{path}: ' if path else ''
        raise ConfigError(f'{where}default_scope must be one of {tuple(TASKS)} (it decides '
                          f'the library), got {scope!r}')
    return TASKS[scope]
