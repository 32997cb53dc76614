"""RepViT backbone, both published releases, with an exact deploy form.

RepViT: Revisiting Mobile CNN From ViT Perspective (Wang et al., CVPR 2024,
arXiv:2307.09283); published code and weights: https://github.com/THU-MIG/RepViT
(Apache-2.0).

Parameter names follow the published checkpoints (``features.N.*``; N = 0 is the
patch embedding, then one entry per block), so published weights of either release
load with ``strict=True``. The deploy form is the published ``replace_batchnorm``
result: every ``Conv2d_BN`` one conv, every ``RepVGGDW`` (with its identity) one
depthwise conv, under the same keys as the published fused models.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import DropPath, SqueezeExcite
from torch import nn

from ...errors import CheckpointFormError
from ..utils.fuse import (add_depthwise_identity, bn_scale_shift, conv_params64, fuse_children,
                          fuse_conv_bn, fused_layer_like, guard_checkpoint_form, pad_to_kernel)
from ..utils.layers import Conv2dBN, conv_bn, patch_stem
from ..utils.norm import build_norm2d
from .base import RepBackbone, run_block


class RepVGGDW(nn.Module):
    """3x3 depthwise conv + 1x1 depthwise conv + identity (published ``RepVGGDW``).

    Later release (M0.6 .. M2.3): ``bn(conv(x) + conv1(x) + x)``, ``conv1`` a
    biased conv. First release (M1, M2, M3): ``conv(x) + conv1(x) + x``, ``conv1``
    a ``Conv2dBN``. Either fuses into one depthwise 3x3 conv.
    """

    def __init__(self, channels: int, first_release: bool = False,
                 norm_cfg: Optional[dict] = None):
        super().__init__()
        self.first_release = first_release
        self.conv = Conv2dBN(channels, channels, 3, 1, 1, groups=channels, norm_cfg=norm_cfg)
        if first_release:
            self.conv1 = Conv2dBN(channels, channels, 1, groups=channels, norm_cfg=norm_cfg)
        else:
            self.conv1 = nn.Conv2d(channels, channels, 1, groups=channels)
            self.bn = build_norm2d(norm_cfg or dict(type='BN'), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x) + self.conv1(x) + x
        if hasattr(self, 'bn'):  # the later release (static for TorchScript)
            return self.bn(out)
        else:
            return out

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        weight, bias = fuse_conv_bn(self.conv.c, self.conv.bn)
        if self.first_release:
            weight1, bias1 = fuse_conv_bn(self.conv1.c, self.conv1.bn)
        else:
            weight1, bias1 = conv_params64(self.conv1)
        weight = add_depthwise_identity(weight + pad_to_kernel(weight1, 3))
        bias = bias + bias1
        if not self.first_release:
            scale, shift = bn_scale_shift(self.bn)
            weight, bias = weight * scale.view(-1, 1, 1, 1), bias * scale + shift
        return fused_layer_like(self.conv.c, weight, bias)


class Residual(nn.Module):
    """``x + m(x)``, with drop-path in training (published ``Residual``: key ``m``)."""

    def __init__(self, m: nn.Module, drop_path: float = 0.):
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.m(x))


class RepViTBlock(nn.Module):
    """Token mixer (depthwise, optional SE) then channel mixer (residual 1x1 FFN, ratio 2).

    Stride 1: ``token_mixer`` = [RepVGGDW, SE or identity]. Stride 2: ``token_mixer``
    = [3x3/2 depthwise Conv2dBN, SE or identity, 1x1 Conv2dBN to the new width].
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 use_se: bool,
                 first_release: bool = False,
                 drop_path: float = 0.,
                 norm_cfg: Optional[dict] = None,
                 deploy: bool = False):
        super().__init__()
        se = SqueezeExcite(in_channels, 0.25) if use_se else nn.Identity()
        if stride == 2:
            self.token_mixer = nn.Sequential(
                conv_bn(in_channels, in_channels, 3, 2, 1, groups=in_channels,
                        norm_cfg=norm_cfg, deploy=deploy), se,
                conv_bn(in_channels, out_channels, 1, norm_cfg=norm_cfg, deploy=deploy))
        elif stride == 1 and in_channels == out_channels:
            mixer = (nn.Conv2d(in_channels, in_channels, 3, 1, 1, groups=in_channels) if deploy
                     else RepVGGDW(in_channels, first_release, norm_cfg))
            self.token_mixer = nn.Sequential(mixer, se)
        else:
            raise ValueError('a RepViT block keeps the channels at stride 1 and may change them '
                             f'at stride 2; got {in_channels} -> {out_channels} at stride {stride}')
        hidden = 2 * out_channels
        self.channel_mixer = Residual(
            nn.Sequential(
                conv_bn(out_channels, hidden, 1, norm_cfg=norm_cfg, deploy=deploy), nn.GELU(),
                conv_bn(hidden, out_channels, 1, bn_weight_init=0., norm_cfg=norm_cfg,
                        deploy=deploy)), drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_mixer(self.token_mixer(x))


def _table(dims, se, first_release=False):
    return dict(dims=dims, se=se, first_release=first_release)


_M0_9_SE = ('100', '0100', '0101010101010100', '010')
_M1_1_SE = ('100', '0100', '01010101010100', '010')
FIRST_RELEASE_ARCHS = ('m1', 'm2', 'm3')
LATER_RELEASE_ARCHS = ('m0_6', 'm0_9', 'm1_0', 'm1_1', 'm1_5', 'm2_3')


class RepViT(RepBackbone):
    """RepViT backbone (first release M1/M2/M3, later release M0.6 .. M2.3).

    Args:
        arch (str | dict): 'm0_6', 'm0_9', 'm1_0', 'm1_1', 'm1_5', 'm2_3' (later
            release), 'm1', 'm2', 'm3' (first release); 'm0.9' spellings work too.
            Or a dict: ``dims`` (four stage widths), ``se`` (four strings of '0'/'1',
            one flag per block, whose lengths are the stage depths; the first block
            of stages 1-3 is the stride-2 one) and optionally ``first_release``.
            Defaults to 'm0_9'.
        out_indices (Sequence[int] | int): stages whose last block's output is
            returned (strides 4, 8, 16, 32). Defaults to (0, 1, 2, 3).
        out_feature_indices (Sequence[int], optional): indices into ``features``
            (0 = the patch embedding, then one per block, as the published
            detection configs count) whose outputs are returned instead of the
            stage ends: the published Mask R-CNN taps, e.g. ``(2, 6, 20, 24)`` for
            m1_1. Must be increasing. Defaults to None (the stage ends).
        drop_path_rate (float): stochastic depth of the channel mixers, rising
            linearly to this value over the blocks. Defaults to 0.
        frozen_stages (int): -1 freezes nothing, 0 the stem (``features.0``), k the
            stem and stages 0 .. k-1. Defaults to -1.
        norm_eval (bool): every BatchNorm in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): ``dict(type='BN')`` or ``'SyncBN'``. Defaults to BN.
        with_cp (bool): activation checkpointing per block. Defaults to False.
        deploy (bool): build the fused form directly. Defaults to False.
        in_channels (int): channels of the input images. Defaults to 3.
        init_cfg (dict | list, optional): initialization config. Defaults to None.

    Example:
        >>> import torch
        >>> from repmobile_mm.models import RepViT
        >>> model = RepViT('m0_9').eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 48, 16, 16), (1, 96, 8, 8), (1, 192, 4, 4), (1, 384, 2, 2)]
        >>> model.stage_ends  # the ``features`` index each stage ends at
        [3, 7, 23, 26]
    """
    family = 'RepViT'
    arch_keys = ('se', )
    arch_options = ('first_release', )
    arch_settings: Dict[str, dict] = {
        'm0_6': _table((40, 80, 160, 320), ('10', '010', '0101010100', '01')),
        'm0_9': _table((48, 96, 192, 384), _M0_9_SE),
        'm1_0': _table((56, 112, 224, 448), _M0_9_SE),
        'm1_1': _table((64, 128, 256, 512), _M1_1_SE),
        'm1_5': _table((64, 128, 256, 512),
                       ('10100', '010100', '01010101010101010101010100', '01010')),
        'm2_3': _table((80, 160, 320, 640),
                       ('1010100', '01010100', '010101010101010101010101010101010100', '010')),
        'm1': _table((48, 96, 192, 384), _M0_9_SE, first_release=True),
        'm2': _table((64, 128, 256, 512), _M1_1_SE, first_release=True),
        'm3': _table((64, 128, 256, 512), ('10100', '010100', '01010101010101010100', '010'),
                     first_release=True),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'm0_9',
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 out_feature_indices: Optional[Sequence[int]] = None,
                 in_channels: int = 3,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices, frozen_stages, norm_eval, norm_cfg, with_cp, deploy,
                         in_channels, init_cfg)
        self.arch = self.parse_arch(arch)
        self.dims = tuple(self.arch['dims'])
        self.depths = tuple(len(flags) for flags in self.arch['se'])
        self.first_release = self.arch['first_release']
        norm_cfg = self.norm_cfg

        layers = [patch_stem(in_channels, self.dims[0], norm_cfg, deploy)]
        drop_rates = torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist()
        prev, self.stage_ends = self.dims[0], []
        for stage, (dim, flags) in enumerate(zip(self.dims, self.arch['se'])):
            for j, flag in enumerate(flags):
                layers.append(RepViTBlock(
                    prev, dim, 2 if stage > 0 and j == 0 else 1, flag == '1',
                    self.first_release, drop_rates[len(layers) - 1], norm_cfg, deploy))
                prev = dim
            self.stage_ends.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        self.out_feature_indices = self.parse_feature_indices(out_feature_indices)
        guard_checkpoint_form(self, 'RepViT backbone', 'features.0.0.bn.running_mean',
                              'features.0.0.bias')
        self.register_load_state_dict_pre_hook(_check_release)
        self._freeze_stages()

    @classmethod
    def arch_name(cls, arch: str) -> str:
        return arch.lower().replace('.', '_')

    @classmethod
    def arch_choices(cls) -> str:
        return (f'{list(LATER_RELEASE_ARCHS)} (later release), '
                f'{list(FIRST_RELEASE_ARCHS)} (first release),')

    @classmethod
    def check_arch(cls, table: dict, arch: dict) -> dict:
        dims, se = table['dims'], table['se']
        if any(not isinstance(f, str) or not f or set(f) - {'0', '1'} for f in se):
            raise ValueError("arch se gives each stage a non-empty string of '0'/'1', one "
                             f'flag per block; got {se}')
        if dims[0] % 2:
            raise ValueError(f'dims[0] must be even (the patch embedding halves it); got {dims}')
        return dict(table, first_release=bool(arch.get('first_release', False)))

    def parse_feature_indices(self, indices: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """The ``features`` indices to return: the taps given, or the selected stage ends."""
        if indices is None:
            return tuple(sorted(self.stage_ends[i] for i in self.out_indices))
        indices = tuple(indices)
        last = len(self.features) - 1
        if not indices or any(not isinstance(i, int) or not 0 <= i <= last for i in indices) \
                or list(indices) != sorted(set(indices)):
            raise ValueError(f'out_feature_indices must be increasing indices into features, '
                             f'0..{last} (stage ends: {self.stage_ends}); got {indices}')
        return indices

    def stage_of(self, feature_index: int) -> int:
        return next(s for s, end in enumerate(self.stage_ends) if feature_index <= end)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned output (the FPN's ``in_channels``)."""
        return [self.dims[self.stage_of(i)] for i in self.out_feature_indices]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        taps = list(self.out_feature_indices)
        return tuple(self.forward_taps(x, taps, taps[-1])[1])

    def forward_stages(self, x: torch.Tensor, take: List[int],
                       stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        return self.forward_taps(x, [self.stage_ends[i] for i in take], self.stage_ends[stop])

    def forward_taps(self, x: torch.Tensor, taps: List[int],
                     stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run ``features`` up to index ``stop``: the last output and those at ``taps``."""
        self.check_input(x)
        outs: List[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            if index <= stop:
                x = layer(x) if torch.jit.is_scripting() or index == 0 else run_block(
                    layer, x, self.with_cp)
                if index in taps:
                    outs.append(x)
        return x, outs

    def prune_stages(self, last: int):
        end = self.stage_ends[last]
        self.features = self.features[:end + 1]
        self.stage_ends = self.stage_ends[:last + 1]
        self.out_indices = tuple(i for i in self.out_indices if i <= last)
        self.out_feature_indices = tuple(i for i in self.out_feature_indices if i <= end)

    def frozen_modules(self, num_stages: int) -> List[nn.Module]:
        return list(self.features[:1 + sum(self.depths[:num_stages])])

    def fuse_modules(self):
        fuse_children(self.features)


def _check_release(model: RepViT, state_dict: dict, prefix: str, *args):
    """Name the release to use when a training-form checkpoint is of the other one."""
    if model.deploy:  # both releases fuse into the same structure
        return
    first = f'{prefix}features.1.token_mixer.0.conv1.c.weight' in state_dict
    later = f'{prefix}features.1.token_mixer.0.bn.running_mean' in state_dict
    if first and not model.first_release:
        raise CheckpointFormError(
            "the checkpoint is of RepViT's first release (M1/M2/M3: its RepVGGDW has a "
            "BatchNorm'd 1x1 branch, key 'token_mixer.0.conv1.c.weight'), but the model "
            f'is built as the later release: use arch {list(FIRST_RELEASE_ARCHS)} (or '
            'first_release=True in a custom arch)')
    if later and model.first_release:
        raise CheckpointFormError(
            "the checkpoint is of RepViT's later release (M0.6 .. M2.3: its RepVGGDW has "
            "a BatchNorm after the sum, key 'token_mixer.0.bn'), but the model is built "
            f'as the first release: use arch {list(LATER_RELEASE_ARCHS)}')
