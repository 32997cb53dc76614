"""timm registrations: ``repmobile_s``, ``repmobile_m``, ``repmobile_l``.

``timm.create_model('repmobile_s', features_only=True)`` returns the four stage
outputs (strides 4 to 32) with ``feature_info``; no pretrained weights are hosted.
"""
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..models import RepMobileNet


def _cfg(**kwargs):
    return dict(
        url='', num_classes=1000, input_size=(3, 224, 224), pool_size=(7, 7),
        crop_pct=0.875, interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD, first_conv='stem.0', classifier='classifier', **kwargs)


default_cfgs = generate_default_cfgs({name: _cfg() for name in
                                      ('repmobile_s', 'repmobile_m', 'repmobile_l')})


def _create(variant: str, pretrained: bool = False, **kwargs):
    if pretrained:
        raise ValueError(f'no pretrained weights are published for timm\'s {variant}; load a '
                         'checkpoint with load_state_dict (published keys load strictly)')
    out_indices = kwargs.pop('out_indices', (0, 1, 2, 3))
    return build_model_with_cfg(
        RepMobileNet, variant, pretrained,
        feature_cfg=dict(flatten_sequential=False, out_indices=out_indices),
        arch=variant.split('_')[-1], **kwargs)


@register_model
def repmobile_s(pretrained: bool = False, **kwargs):
    """RepMobile-S (5.72M parameters, 0.43G MACs at 224)."""
    return _create('repmobile_s', pretrained, **kwargs)


@register_model
def repmobile_m(pretrained: bool = False, **kwargs):
    """RepMobile-M (8.21M parameters, 0.71G MACs at 224)."""
    return _create('repmobile_m', pretrained, **kwargs)


@register_model
def repmobile_l(pretrained: bool = False, **kwargs):
    """RepMobile-L (18.36M parameters, 1.40G MACs at 224)."""
    return _create('repmobile_l', pretrained, **kwargs)
