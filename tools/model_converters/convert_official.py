"""Convert a published classification checkpoint for tools/test.py and the configs.

    python tools/model_converters/convert_official.py SRC DST [--force]

Detects what SRC holds and says which config to use:
- published RepMobile (``model``: ``stem.*``, ``layer0-3.*``, ``head.*``, ``classifier.*``);
- published RepViT of either release (``model``: ``features.*``, ``classifier.*``);
- published RepNeXt (``model``: ``stem.stem.*``, ``stages.*``, ``head.*``; always with the
  distillation head ``head.head_dist``);
- timm's RepViT weights (``stem.*``, ``stages.*``, ``head.*``; a ``.pth`` of
  ``timm.create_model('repvit_m0_9').state_dict()``, or timm's ``.safetensors``),
  timm's ``repvit_m1/m2/m3`` being the first release;
with or without a distillation head. Keys become ``backbone.*``, ``neck.*``, ``head.*``.
"""
import argparse
import os.path as osp
import re
import sys
from typing import Dict

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.engine.checkpoint import check_output_path, read_checkpoint, save_atomically
from repmobile_mm.models.backbones.repnext import RepNeXt
from repmobile_mm.models.backbones.repvit import RepViT

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
REPMOBILE_PREFIXES = (('stem.', 'backbone.stem.'), ('layer', 'backbone.layer'),
                      ('head.', 'neck.'), ('classifier.', 'head.'))
REPVIT_PREFIXES = (('features.', 'backbone.features.'), ('classifier.', 'head.'))
REPNEXT_PREFIXES = (('stem.', 'backbone.stem.'), ('stages.', 'backbone.stages.'),
                    ('head.', 'head.'))


def rename(state_dict: Dict[str, torch.Tensor], prefixes, what: str) -> dict:
    """Replace the longest matching prefix of every key; a key that matches none is an error."""
    ordered = sorted(prefixes, key=lambda p: -len(p[0]))
    converted = {}
    for key, value in state_dict.items():
        for old, new in ordered:
            if key.startswith(old):
                converted[new + key[len(old):]] = value
                break
        else:
            raise SystemExit(f'unexpected key {key!r}: not a {what}')
    return converted


def _block_prefixes(src: str, index: int) -> dict:
    dst = f'features.{index}.'
    return {src + 'token_mixer.': dst + 'token_mixer.0.', src + 'se.': dst + 'token_mixer.1.',
            src + 'channel_mixer.conv1.': dst + 'channel_mixer.m.0.',
            src + 'channel_mixer.conv2.': dst + 'channel_mixer.m.2.'}


def timm_repvit_to_published(state_dict: dict) -> dict:
    """timm's RepViT keys to the published ones.

    timm regroups the blocks: each stage after the first starts with a
    ``downsample`` holding the previous stage's last block (``pre_block``) and the
    stride-2 block; in published order they are consecutive ``features`` entries.
    """
    prefixes = {'stem.conv1.': 'features.0.0.', 'stem.conv2.': 'features.0.2.',
                'head.head.': 'classifier.classifier.',
                'head.head_dist.': 'classifier.classifier_dist.'}
    stages = sorted({int(k.split('.')[1]) for k in state_dict if k.startswith('stages.')})
    index = 1
    for stage in stages:
        down = f'stages.{stage}.downsample.'
        if any(k.startswith(down) for k in state_dict):
            prefixes.update(_block_prefixes(down + 'pre_block.', index))
            index += 1
            dst = f'features.{index}.'
            prefixes.update({down + 'spatial_downsample.': dst + 'token_mixer.0.',
                             down + 'channel_downsample.': dst + 'token_mixer.2.'})
            for ffn in ('ffn.', 'ffn.m.'):  # timm versions with and without a Residual
                prefixes.update({down + ffn + 'conv1.': dst + 'channel_mixer.m.0.',
                                 down + ffn + 'conv2.': dst + 'channel_mixer.m.2.'})
            index += 1
        blocks = {int(m.group(1)) for k in state_dict
                  for m in [re.match(rf'stages\.{stage}\.blocks\.(\d+)\.', k)] if m}
        for block in sorted(blocks):
            prefixes.update(_block_prefixes(f'stages.{stage}.blocks.{block}.', index))
            index += 1
    return rename(state_dict, prefixes.items(), "timm RepViT's")


def repvit_arch(state_dict: dict) -> str:
    """The arch name of a published-key RepViT state dict, or its block table."""
    widths, se = [], []
    index = 1
    while f'features.{index}.channel_mixer.m.2.c.weight' in state_dict:
        widths.append(state_dict[f'features.{index}.channel_mixer.m.2.c.weight'].shape[0])
        se.append('1' if f'features.{index}.token_mixer.1.fc1.weight' in state_dict else '0')
        index += 1
    dims = tuple(dict.fromkeys(widths))
    table = dict(dims=dims, se=tuple(''.join(f for f, w in zip(se, widths) if w == d)
                                     for d in dims),
                 first_release='features.1.token_mixer.0.conv1.c.weight' in state_dict)
    for name, settings in RepViT.arch_settings.items():
        if settings == table:
            return name
    return str(table)


def repnext_arch(state_dict: dict) -> str:
    """The arch name of a published RepNeXt state dict, or its dims and depths."""
    dims = tuple(state_dict[f'stages.{i}.blocks.0.norm.weight'].shape[0] for i in range(4))
    depths = tuple(len({k.split('.')[3] for k in state_dict
                        if k.startswith(f'stages.{i}.blocks.')}) for i in range(4))
    table = dict(dims=dims, depths=depths)
    for name, settings in RepNeXt.arch_settings.items():
        if settings == table:
            return name
    return str(table)


def read_source(path: str) -> dict:
    """The published weights in ``path`` (a checkpoint, a state dict or safetensors)."""
    if path.endswith('.safetensors'):
        if not osp.isfile(path):
            raise SystemExit(f'checkpoint not found: {path}')
        from safetensors.torch import load_file
        return load_file(path)
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('model'), dict):
        return checkpoint['model']
    if isinstance(checkpoint, dict) and checkpoint and \
            all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    raise SystemExit(f"{path}: expected a published checkpoint (weights under 'model') or "
                     'a state dict of tensors (timm)')


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published checkpoint (.pth) or timm weights '
                        '(.pth state dict or .safetensors)')
    parser.add_argument('dst', help='converted checkpoint')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args()
    check_output_path(args.dst, args.force)
    state_dict, config = convert(read_source(args.src))
    save_atomically({'state_dict': state_dict, 'meta': dict(converted_from=args.src)},
                    args.dst, args.force)
    print(f'wrote {args.dst}; test it with {config}')


if __name__ == '__main__':
    sys.exit(run(main))
