"""timm registrations: ``repmobile_s/m/l``, ``mm_repvit_*`` (every RepViT variant) and
``repnext_m0`` .. ``repnext_m5`` (timm has no RepNeXt of its own).

timm ships its own ``repvit_*`` (other key names), hence the ``mm_`` prefix for
ours, which take the published checkpoints' keys. ``features_only=True`` returns
the four stage outputs (strides 4 to 32) with ``feature_info``; no pretrained
weights are hosted.
"""
import contextlib

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..models import RepMobileNet, RepNeXt, RepNeXtNet, RepViTNet
from ..models.backbones.repvit import FIRST_RELEASE_ARCHS, LATER_RELEASE_ARCHS

REPMOBILE_ARCHS = ('s', 'm', 'l')
REPNEXT_ARCHS = tuple(sorted(RepNeXt.arch_settings))


def _cfg(first_conv, classifier):
    return dict(
        url='', num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD, first_conv=first_conv, classifier=classifier)


# ``classifier``: the output layers of the classifier branches (timm resets them)
default_cfgs = generate_default_cfgs({
    **{f'repmobile_{a}': _cfg('stem.0', 'classifier.classifier.4') for a in REPMOBILE_ARCHS},
    **{f'mm_repvit_{a}': _cfg('features.0.0.c', 'classifier.classifier.l')
       for a in LATER_RELEASE_ARCHS + FIRST_RELEASE_ARCHS},
    **{f'repnext_{a}': _cfg('stem.stem.0.conv', ('head.head.linear', 'head.head_dist.linear'))
       for a in REPNEXT_ARCHS},
})


def _create(model_cls, variant: str, arch: str, pretrained: bool, flatten_sequential: bool,
            device=None, dtype=None, **kwargs):
    if pretrained:
        raise ValueError(f'no pretrained weights are published for timm\'s {variant}; load a '
                         'checkpoint with load_state_dict (published keys load strictly)')
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    # timm's factory passes the placement on: build there (meta included), then cast
    with torch.device(device) if device is not None else contextlib.nullcontext():
        model = build_model_with_cfg(
            model_cls, variant, pretrained,
            feature_cfg=dict(flatten_sequential=flatten_sequential, out_indices=out_indices),
            arch=arch, **kwargs)
    return model if dtype is None else model.to(dtype=dtype)


def _repmobile(arch):
    def create(pretrained: bool = False, **kwargs):
        return _create(RepMobileNet, f'repmobile_{arch}', arch, pretrained, False, **kwargs)
    create.__name__ = f'repmobile_{arch}'
    create.__doc__ = f'RepMobile-{arch.upper()} with the published head.'
    return create


def _repvit(arch):
    def create(pretrained: bool = False, **kwargs):
        # stage ends are entries of the ``features`` Sequential: flattened to be found
        return _create(RepViTNet, f'mm_repvit_{arch}', arch, pretrained, True, **kwargs)
    release = 'first' if arch in FIRST_RELEASE_ARCHS else 'later'
    create.__name__ = f'mm_repvit_{arch}'
    create.__doc__ = (f'RepViT-{arch.upper().replace("_", ".")} ({release} release) under '
                      'the published keys.')
    return create


def _repnext(arch):
    def create(pretrained: bool = False, **kwargs):
        # stages are entries of the ``stages`` Sequential: flattened to be found
        return _create(RepNeXtNet, f'repnext_{arch}', arch, pretrained, True, **kwargs)
    create.__name__ = f'repnext_{arch}'
    create.__doc__ = f'RepNeXt-{arch.upper()} under the published keys.'
    return create


for _arch in REPMOBILE_ARCHS:
    register_model(_repmobile(_arch))
for _arch in LATER_RELEASE_ARCHS + FIRST_RELEASE_ARCHS:
    register_model(_repvit(_arch))
for _arch in REPNEXT_ARCHS:
    register_model(_repnext(_arch))
