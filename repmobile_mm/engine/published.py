"""Checkpoints in the published releases' layouts, read as this package's.

A published classification release (RepMobile, RepViT of either release, RepNeXt, or
timm's RepViT weights), under any of its wrappers (``model``, ``state_dict``, their EMA
twins, or bare), becomes ``{'state_dict': backbone.*/neck.*/head.*}`` in memory, by the
one mapping per family of ``models/published.py``; RepNeXt's fused TorchScript release
(``*_fused.pt``) becomes the weights of our deploy form. Every other checkpoint passes
unchanged, the published COCO and ADE20K ones included: mmdet 2.x and mmseg 0.x name
Mask R-CNN's and Semantic FPN's modules as mmdet 3.x and mmseg 1.x do, their backbones
keep the classification keys, which ours are, and ``init_detector``, ``init_model`` and
the inferencers read the classes and palette of their ``meta`` (``CLASSES``,
``PALETTE``) themselves.

:func:`engine.checkpoint.read_checkpoint` applies it, hence every tool and, once the
package is imported, mmengine's loaders (``init_cfg``, ``load_from``, ``init_detector``,
``init_model``, the inferencers); tools/model_converters/convert_official.py writes the
same conversion to a file.
"""
from typing import Optional, Tuple

from ..errors import CheckpointError
from ..models.backbones.repnext import RepNeXt
from ..models.backbones.repvit import RepViT
from ..models.published import (REPMOBILE_PREFIXES, REPNEXT_PREFIXES, REPVIT_PREFIXES, rename,
                                repnext_arch, repnext_fused_to_deploy, repvit_arch,
                                timm_repvit_to_published)

# where a release keeps its weights, in the order looked for (DeiT-style training
# scripts: ``model``, ``model_ema``; timm's and mmengine's: ``state_dict``)
WRAPPERS = ('model', 'state_dict', 'model_ema', 'state_dict_ema')


def release_family(weights: dict) -> Optional[str]:
    """Which published classifier layout ``weights`` are in, by keys no other model
    has together; None for any other state dict."""
    keys = {k for k in weights if isinstance(k, str)}

    def has(prefix, part=''):
        return any(k.startswith(prefix) and part in k for k in keys)

    if 'stem.stem.0.conv.weight' in keys and has('stages.', '.token_mixer.'):
        return 'repnext'
    if 'stem.stem.0.weight' in keys and has('stages.', '.token_mixer.') and \
            'head.head.weight' in keys:
        return 'repnext-fused'
    if 'features.0.0.c.weight' in keys and has('features.', '.token_mixer.'):
        return 'repvit'
    if 'stem.conv1.c.weight' in keys and has('stages.', '.token_mixer.'):
        return 'timm-repvit'
    if 'stem.0.weight' in keys and has('layer0.', 'ClaSiLU_gate'):
        return 'repmobile'
    return None


def release_weights(checkpoint) -> Optional[dict]:
    """The weights of a published classification release in ``checkpoint`` (under any
    wrapper), or None when it holds none."""
    if not isinstance(checkpoint, dict):
        return None
    for weights in [checkpoint.get(key) for key in WRAPPERS] + [checkpoint]:
        if isinstance(weights, dict) and release_family(weights):
            return weights
    return None


def convert(weights: dict) -> Tuple[dict, str]:
    """(our state dict, the config to use) for a published release's ``weights``."""
    family = release_family(weights)
    if family is None:
        sample = ', '.join(list(weights)[:3])
        raise CheckpointError(f'not a published RepMobile, RepViT or RepNeXt classifier (keys '
                              f'{sample}, ...); expected stem.*/layer0-3.* (RepMobile), '
                              'features.* (RepViT), stem.stem.*/stages.* (RepNeXt) or timm '
                              "RepViT's stem.conv1.*/stages.*")
    distill = any(k.startswith(('classifier.classifier_dist.', 'classifier_dist.',
                                'head.head_dist.')) for k in weights)
    suffix = '-distill' if distill else ''
    if family == 'repnext-fused':  # a distilled model, fused: its deploy twin
        arch = repnext_arch(weights)
        config = (f'classification/configs/repnext/deploy/repnext-{arch}-deploy_8xb256-300e-'
                  'distill_in1k.py' if arch in RepNeXt.arch_settings else
                  f'a RepNeXt deploy config with backbone arch={arch}')
        return rename(repnext_fused_to_deploy(weights), REPNEXT_PREFIXES,
                      'published fused RepNeXt'), config
    if family == 'repnext':
        arch = repnext_arch(weights)
        config = (f'classification/configs/repnext/repnext-{arch}_8xb256-300e{suffix}_in1k.py'
                  if arch in RepNeXt.arch_settings else
                  f'a RepNeXt config with backbone arch={arch}')
        return rename(weights, REPNEXT_PREFIXES, 'published RepNeXt classifier'), config
    if family in ('repvit', 'timm-repvit'):
        if family == 'timm-repvit':
            weights = timm_repvit_to_published(weights)
        arch = repvit_arch(weights)
        variant = arch.replace('_', '.') if arch in RepViT.arch_settings else None
        config = (f'classification/configs/repvit/repvit-{variant}_8xb256-300e{suffix}_in1k.py'
                  if variant else f'a RepViT config with backbone arch={arch}')
        return rename(weights, REPVIT_PREFIXES, 'published RepViT classifier'), config
    converted = rename(weights, REPMOBILE_PREFIXES, 'published RepMobile classifier')
    width = converted['backbone.layer3.0.conv_dw.1.weight'].shape[0]
    arch = {512: 's', 640: 'm', 768: 'l'}.get(width)
    name = f'_4xb256-300e{suffix}_in1k.py'
    config = (f'classification/configs/repmobile/repmobile-{arch}{name}' if arch else
              f'a repmobile-*{name} config with a custom arch (last stage width {width})')
    return converted, config


def as_ours(checkpoint, source: str):
    """``checkpoint`` (read from ``source``) in this package's layout: see the module."""
    weights = release_weights(checkpoint)
    if weights is None:
        return checkpoint
    state_dict, config = convert(weights)
    return {'state_dict': state_dict, 'meta': dict(converted_from=source, config=config)}


def converted_release(checkpoint, source: str) -> dict:
    """:func:`as_ours` of a checkpoint that must be a published classification release;
    anything else is a one-line error naming the keys found and the layouts expected."""
    if release_weights(checkpoint) is None:
        weights = next((checkpoint[k] for k in WRAPPERS if isinstance(checkpoint.get(k), dict)),
                       checkpoint) if isinstance(checkpoint, dict) else {}
        try:
            convert(weights)
        except CheckpointError as err:
            raise CheckpointError(f'{source}: {err}') from None
    return as_ours(checkpoint, source)
