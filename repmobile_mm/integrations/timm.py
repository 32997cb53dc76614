"""timm registrations: ``repmobile_s/m/l``, ``mm_repvit_*`` (every RepViT variant) and
``repnext_m0`` .. ``repnext_m5`` (timm has no RepNeXt of its own).

timm ships its own ``repvit_*`` (other key names), hence the ``mm_`` prefix for
ours, which take the published checkpoints' keys. ``features_only=True`` returns
the four stage outputs (strides 4 to 32) with ``feature_info``. ``pretrained=True``
downloads the published release file of a RepViT or RepNeXt name (tags ``dist_300e_in1k``,
the default, and RepViT's ``dist_450e_in1k``: ``models/published.RELEASE_URLS``);
``pretrained_cfg_overlay=dict(file=PATH)`` loads one offline (RepMobile's, which have no
direct URL, or timm's own RepViT weights into ``mm_repvit_*``), through
:func:`checkpoint_filter_fn`.
"""
import contextlib

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import (build_model_with_cfg, generate_default_cfgs, register_model,
                         resolve_pretrained_cfg)

from ..engine.published import release_weights
from ..errors import CheckpointError
from ..models import RepMobileNet, RepNeXt, RepNeXtNet, RepViTNet
from ..models.backbones.repvit import FIRST_RELEASE_ARCHS, LATER_RELEASE_ARCHS
from ..models.published import RELEASE_URLS, timm_repvit_to_published

REPMOBILE_ARCHS = ('s', 'm', 'l')
REPNEXT_ARCHS = tuple(sorted(RepNeXt.arch_settings))


def _cfg(first_conv, classifier, **kwargs):
    return dict(
        url='', num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD, first_conv=first_conv, classifier=classifier, **kwargs)


# ``classifier``: the output layers of the classifier branches (timm resets them).
# RepMobile's publishers state no license and no paper identifier with their release.
REPVIT = dict(license='apache-2.0', paper_ids='arXiv:2307.09283',
              paper_name='RepViT: Revisiting Mobile CNN From ViT Perspective',
              origin_url='https://github.com/THU-MIG/RepViT')
REPNEXT = dict(license='apache-2.0', paper_ids='arXiv:2406.16004',
               paper_name='RepNeXt: A Fast Multi-Scale CNN using Structural Reparameterization',
               origin_url='https://github.com/suous/RepNeXt')


def _releases(name: str, cfg: dict) -> dict:
    """``name``'s cfgs: one per published release file (tagged, with its URL), or one
    without weights."""
    return {tagged: dict(cfg, url=url) for tagged, url in RELEASE_URLS.items()
            if tagged.split('.')[0] == name} or {name: cfg}


# per model name, before the published release files are added (:func:`_releases`)
BASE_CFGS = {
    **{f'repmobile_{a}': _cfg('stem.0', ('classifier.classifier.4',
                                         'classifier.classifier_dist.4'))
       for a in REPMOBILE_ARCHS},
    **{f'mm_repvit_{a}': _cfg('features.0.0.c', ('classifier.classifier.l',
                                                 'classifier.classifier_dist.l'), **REPVIT)
       for a in LATER_RELEASE_ARCHS + FIRST_RELEASE_ARCHS},
    **{f'repnext_{a}': _cfg('stem.stem.0.conv', ('head.head.linear', 'head.head_dist.linear'),
                            **REPNEXT)
       for a in REPNEXT_ARCHS},
}
default_cfgs = generate_default_cfgs({tagged: cfg for name, base in BASE_CFGS.items()
                                      for tagged, cfg in _releases(name, base).items()})


def checkpoint_filter_fn(state_dict: dict, model) -> dict:
    """A published release file's weights for ``model``: the release files keep them
    under ``model`` (or another wrapper: ``engine/published.py``) in the published keys,
    which ours are; timm's own RepViT weights (``stages.*``) are renamed to them. A
    model built without the distillation branch takes a distilled checkpoint's class
    branch alone (the published predictions are the mean of both branches: build it
    with ``distillation=True`` for those)."""
    state_dict = release_weights(state_dict) or state_dict
    if isinstance(model, RepViTNet) and any(k.startswith('stages.') for k in state_dict):
        state_dict = timm_repvit_to_published(state_dict)
    distilled = any('_dist.' in k for k in state_dict)
    if model.distillation and not distilled:
        raise CheckpointError('the checkpoint has no distillation branch: create the model '
                              'with distillation=False')
    if distilled and not model.distillation:
        state_dict = {k: v for k, v in state_dict.items() if '_dist.' not in k}
    return state_dict


def _create(model_cls, variant: str, arch: str, pretrained: bool, flatten_sequential: bool,
            device=None, dtype=None, **kwargs):
    """Build through timm's factory; ``pretrained`` loads the release file of the
    name's tag, or the file or URL of ``pretrained_cfg_overlay``, through
    :func:`checkpoint_filter_fn`."""
    if pretrained:
        cfg = resolve_pretrained_cfg(variant, kwargs.get('pretrained_cfg'),
                                     kwargs.get('pretrained_cfg_overlay'))
        if not (cfg.url or cfg.file or cfg.hf_hub_id):
            raise ValueError(f"timm's {variant} has no published weights to download "
                             "(RepMobile's are Google Drive share links): download a release "
                             'file and pass pretrained_cfg_overlay=dict(file=PATH)')
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    # timm's factory passes the placement on: build there (meta included), then cast
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = build_model_with_cfg(
            model_cls, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(flatten_sequential=flatten_sequential, out_indices=out_indices),
            arch=arch, **kwargs)
    return model if dtype is None else model.to(dtype=dtype)


def _repmobile(variant: str, arch: str, **kwargs):
    return _create(RepMobileNet, variant, arch, flatten_sequential=False, **kwargs)


def _repvit(variant: str, arch: str, **kwargs):
    # stage ends are entries of the ``features`` Sequential: flattened to be found
    return _create(RepViTNet, variant, arch, flatten_sequential=True, **kwargs)


def _repnext(variant: str, arch: str, **kwargs):
    # stages are entries of the ``stages`` Sequential: flattened to be found
    return _create(RepNeXtNet, variant, arch, flatten_sequential=True, **kwargs)


@register_model
def repmobile_s(pretrained: bool = False, **kwargs) -> RepMobileNet:
    """RepMobile-S with the published head."""
    return _repmobile('repmobile_s', 's', pretrained=pretrained, **kwargs)


@register_model
def repmobile_m(pretrained: bool = False, **kwargs) -> RepMobileNet:
    """RepMobile-M with the published head."""
    return _repmobile('repmobile_m', 'm', pretrained=pretrained, **kwargs)


@register_model
def repmobile_l(pretrained: bool = False, **kwargs) -> RepMobileNet:
    """RepMobile-L with the published head."""
    return _repmobile('repmobile_l', 'l', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m0_6(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M0.6 (later release) under the published keys."""
    return _repvit('mm_repvit_m0_6', 'm0_6', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m0_9(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M0.9 (later release) under the published keys."""
    return _repvit('mm_repvit_m0_9', 'm0_9', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m1_0(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M1.0 (later release) under the published keys."""
    return _repvit('mm_repvit_m1_0', 'm1_0', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m1_1(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M1.1 (later release) under the published keys."""
    return _repvit('mm_repvit_m1_1', 'm1_1', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m1_5(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M1.5 (later release) under the published keys."""
    return _repvit('mm_repvit_m1_5', 'm1_5', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m2_3(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M2.3 (later release) under the published keys."""
    return _repvit('mm_repvit_m2_3', 'm2_3', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m1(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M1 (first release) under the published keys."""
    return _repvit('mm_repvit_m1', 'm1', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m2(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M2 (first release) under the published keys."""
    return _repvit('mm_repvit_m2', 'm2', pretrained=pretrained, **kwargs)


@register_model
def mm_repvit_m3(pretrained: bool = False, **kwargs) -> RepViTNet:
    """RepViT-M3 (first release) under the published keys."""
    return _repvit('mm_repvit_m3', 'm3', pretrained=pretrained, **kwargs)


@register_model
def repnext_m0(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M0 under the published keys."""
    return _repnext('repnext_m0', 'm0', pretrained=pretrained, **kwargs)


@register_model
def repnext_m1(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M1 under the published keys."""
    return _repnext('repnext_m1', 'm1', pretrained=pretrained, **kwargs)


@register_model
def repnext_m2(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M2 under the published keys."""
    return _repnext('repnext_m2', 'm2', pretrained=pretrained, **kwargs)


@register_model
def repnext_m3(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M3 under the published keys."""
    return _repnext('repnext_m3', 'm3', pretrained=pretrained, **kwargs)


@register_model
def repnext_m4(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M4 under the published keys."""
    return _repnext('repnext_m4', 'm4', pretrained=pretrained, **kwargs)


@register_model
def repnext_m5(pretrained: bool = False, **kwargs) -> RepNeXtNet:
    """RepNeXt-M5 under the published keys."""
    return _repnext('repnext_m5', 'm5', pretrained=pretrained, **kwargs)
