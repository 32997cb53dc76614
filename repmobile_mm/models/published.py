"""What the published releases look like, beside ours.

Their key layouts: the maps from a published classifier's keys (and timm's RepViT
keys) to ours, and the variant a state dict is. Their structures, rebuilt from the
specs for comparison: the RepMobile block's training forward (shared/specs/repmobile.md)
and the RepNeXt fuse (shared/specs/repnext.md); tools/analysis_tools/benchmark.py times
them beside ours (``(published)`` and ``(published fuse)`` rows) and the tests check
them against the published implementations' outputs and parameter counts.
"""
import copy
import re
from typing import Dict

import torch
from torch import nn

from ..errors import CheckpointError
from .backbones.repmobile import RepMobileBlock
from .backbones.repnext import ChunkConv, RepDWConvM, RepDWConvS, RepNeXt
from .backbones.repvit import RepViT
from .utils.layers import Conv2dBN

# The published ImageNet-1K release files with a direct URL (shared/specs/
# published-weights.md), by timm name and tag; the first tag of a name is its default.
# RepMobile's are Google Drive share links, which no downloader can fetch.
REPVIT_RELEASE = 'https://github.com/THU-MIG/RepViT/releases/download/v1.0/'
REPVIT_FIRST_RELEASE = ('https://github.com/jameslahm/RepViT/releases/download/'
                        'untagged-75eb9e1fea235b938f50/')
REPNEXT_RELEASE = 'https://github.com/suous/RepNeXt/releases/download/v1.0/'
RELEASE_URLS = {
    **{f'mm_repvit_{a}.dist_{e}_in1k': f'{REPVIT_RELEASE}repvit_{a}_distill_{e}.pth'
       for a in ('m0_6', 'm0_9', 'm1_0', 'm1_1', 'm1_5', 'm2_3') for e in ('300e', '450e')
       if (a, e) != ('m0_6', '450e')},
    **{f'mm_repvit_{a}.dist_300e_in1k': f'{REPVIT_FIRST_RELEASE}repvit_{a}_distill_300.pth'
       for a in ('m1', 'm2', 'm3')},
    **{f'repnext_{a}.dist_300e_in1k': f'{REPNEXT_RELEASE}repnext_{a}_distill_300e.pth'
       for a in ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')},
}

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
            raise CheckpointError(f'unexpected key {key!r}: not a {what}')
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


def repnext_fused_to_deploy(state_dict: dict) -> dict:
    """Our deploy form's weights (published keys) from the published fused release's
    (``repnext_*_fused.pt``: the published fuse, which keeps the BatchNorm after every
    token mixer and averages the two heads into one Linear), those BatchNorms folded as
    our deploy form folds them."""
    from .nets import RepNeXtNet
    net = published_repnext_fuse(RepNeXtNet(
        repnext_table(state_dict), num_classes=state_dict['head.head.weight'].shape[0]))
    own = net.state_dict()
    if own.keys() != state_dict.keys():
        missing = sorted(set(own) - set(state_dict))[:3]
        raise CheckpointError(f'not a published fused RepNeXt ({len(own)} weights expected, '
                              f'missing {missing})')
    with torch.no_grad():  # copied in place: the form guard takes a fused checkpoint for
        for key, value in own.items():  # ours, which this structure is not yet
            value.copy_(state_dict[key])
    for module in net.modules():
        if isinstance(module, ChunkConv):
            module.deploy = True  # its convs are fused already
    net.switch_to_deploy()
    return net.state_dict()


def repnext_table(state_dict: dict) -> dict:
    """The dims and depths of a published RepNeXt state dict (fused or not)."""
    dims = tuple(state_dict[f'stages.{i}.blocks.0.norm.weight'].shape[0] for i in range(4))
    depths = tuple(len({k.split('.')[3] for k in state_dict
                        if k.startswith(f'stages.{i}.blocks.')}) for i in range(4))
    return dict(dims=dims, depths=depths)


def repnext_arch(state_dict: dict) -> str:
    """The arch name of a published RepNeXt state dict, or its dims and depths."""
    table = repnext_table(state_dict)
    for name, settings in RepNeXt.arch_settings.items():
        if settings == table:
            return name
    return str(table)


class PublishedBlock(RepMobileBlock):
    """The published block's training forward: the stride-2 identity by split, add and
    concatenate, which our training form saves."""

    def forward(self, x):
        y = self.conv_pw(x)
        if self.stride == 1:
            y = y + x
        else:  # split y into halves, add x to each, concatenate back
            first, second = y.chunk(2, dim=1)
            y = torch.cat([first + x, second + x], dim=1)
        y = y * torch.sigmoid(y + self.ClaSiLU_gate(x))
        return self.conv_dw(y) + self.down(y)


def published_structure(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose blocks run the published forward (same weights)."""
    published = copy.deepcopy(model)
    for module in published.modules():
        if isinstance(module, RepMobileBlock):
            module.__class__ = PublishedBlock
    return published


def published_repnext_fuse(model: nn.Module) -> nn.Module:
    """The published RepNeXt fuse (shared/specs/repnext.md): each RepDWConvS, RepDWConvM
    and ConvNorm one conv, the two NormLinear heads one Linear; the BatchNorm after
    every token mixer (blocks and downsamples) stays."""
    fused = copy.deepcopy(model)

    def walk(module):
        for name, child in module.named_children():
            if isinstance(child, (RepDWConvS, RepDWConvM, Conv2dBN)):
                setattr(module, name, child.fuse())
            else:
                walk(child)

    walk(fused)
    fused.head.switch_to_deploy()
    return fused.eval()
