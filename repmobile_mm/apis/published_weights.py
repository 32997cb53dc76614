"""Published classification checkpoints in the layout of this package's configs: what a
release file holds, which config it goes with. Its command line:
tools/model_converters/convert_official.py.
"""
import os.path as osp

import torch

from ..engine.checkpoint import read_checkpoint
from ..errors import CheckpointError, CheckpointNotFoundError
from ..models.backbones.repnext import RepNeXt
from ..models.backbones.repvit import RepViT
from ..models.published import (REPMOBILE_PREFIXES, REPNEXT_PREFIXES, REPVIT_PREFIXES, rename,
                                repnext_arch, repvit_arch, timm_repvit_to_published)


def read_source(path: str) -> dict:
    """The published weights in ``path`` (a checkpoint, a state dict or safetensors)."""
    if path.endswith('.safetensors'):
        if not osp.isfile(path):
            raise CheckpointNotFoundError(f'checkpoint not found: {path}')
        from safetensors.torch import load_file
        return load_file(path)
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('model'), dict):
        return checkpoint['model']
    if isinstance(checkpoint, dict) and checkpoint and \
            all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError(f"{path}: expected a published checkpoint (weights under 'model') "
                          'or a state dict of tensors (timm)')


def convert(source: dict):
    """(converted state dict, config path to use) for any supported source."""
    distill = any(k.startswith(('classifier.classifier_dist.', 'classifier_dist.',
                                'head.head_dist.')) for k in source)
    suffix = '-distill' if distill else ''
    if 'stem.stem.0.conv.weight' in source:
        arch = repnext_arch(source)
        config = (f'classification/configs/repnext/repnext-{arch}_8xb256-300e{suffix}_in1k.py'
                  if arch in RepNeXt.arch_settings else
                  f'a RepNeXt config with backbone arch={arch}')
        return rename(source, REPNEXT_PREFIXES, 'published RepNeXt classifier'), config
    if any(k.startswith('stages.') for k in source):
        source = timm_repvit_to_published(source)
    if any(k.startswith('features.') for k in source):
        arch = repvit_arch(source)
        variant = arch.replace('_', '.') if arch in RepViT.arch_settings else None
        config = (f'classification/configs/repvit/repvit-{variant}_8xb256-300e{suffix}_in1k.py'
                  if variant else f'a RepViT config with backbone arch={arch}')
        return rename(source, REPVIT_PREFIXES, 'published RepViT classifier'), config
    converted = rename(source, REPMOBILE_PREFIXES, 'published RepMobile or RepViT classifier')
    width = converted['backbone.layer3.0.conv_dw.1.weight'].shape[0]
    arch = {512: 's', 640: 'm', 768: 'l'}.get(width)
    name = f'_4xb256-300e{suffix}_in1k.py'
    config = (f'classification/configs/repmobile/repmobile-{arch}{name}' if arch else
              f'a repmobile-*{name} config with a custom arch (last stage width {width})')
    return converted, config
