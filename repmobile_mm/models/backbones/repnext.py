"""RepNeXt backbone with an exact deploy form more fused than the published one.

RepNeXt: A Fast Multi-Scale CNN using Structural Reparameterization (Zhao, Luo and
Ouyang, arXiv:2406.16004); published code and weights: https://github.com/suous/RepNeXt
(Apache-2.0).

Parameter names follow the published checkpoints (``stem.stem.*``, ``stages.i.*``),
so published weights load with ``strict=True``. The published fuse makes each
RepDWConvS / RepDWConvM one depthwise conv and each ConvNorm one conv; ours also
folds every BatchNorm after a token mixer (into the next 1x1 conv in a block, into
the two depthwise convs in a downsample, whose BatchNorm also feeds the residual)
and runs each ChunkConv's 3x3 and 7x7 chunks as one 7x7 conv call.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn

from ..utils.fuse import (bn_scale_shift, conv_params64, fuse_bn_conv1x1, fuse_children,
                          fused_layer_like, guard_checkpoint_form, pad_to_kernel)
from ..utils.layers import conv_bn, patch_stem
from ..utils.norm import build_norm2d
from .base import BlockSequence, RepBackbone, run_block

CONV_NORM = ('conv', 'norm')  # RepNeXt's ConvNorm keys


def dwconv(channels: int, kernel: Tuple[int, int], stride: Tuple[int, int] = (1, 1),
           bias: bool = True, dilation: int = 1) -> nn.Conv2d:
    """A depthwise conv padded to keep its kernel centred ('same' at stride 1)."""
    padding = tuple(dilation * (k - 1) // 2 for k in kernel)
    return nn.Conv2d(channels, channels, kernel, stride, padding, dilation, groups=channels,
                     bias=bias)


def serial_kernel(conv_w: nn.Conv2d, conv_h: nn.Conv2d) -> torch.Tensor:
    """The kxk kernel of a bias-free 1xk conv followed by a kx1 conv (outer product).

    Exact at every size and stride: the first conv has no bias, so the rows the
    second conv pads are the zeros the kxk conv's padding gives.
    """
    assert conv_w.bias is None, 'a 1xk conv with a bias does not fold exactly'
    return conv_h.weight.double() * conv_w.weight.double()  # (C,1,k,1) * (C,1,1,k)


def dilated_to_dense(weight: torch.Tensor) -> torch.Tensor:
    """A 2x2 kernel with dilation 2 as the sparse 3x3 kernel it is (the corners)."""
    dense = weight.new_zeros(*weight.shape[:2], 3, 3)
    dense[..., ::2, ::2] = weight
    return dense


class RepDWConvS(nn.Module):
    """Small kernels: 3x3, 1x3, 3x1, dilated 2x2 (published ``RepDWConvS``).

    Stride 1: the sum of the four on x. Stride 2: 1x3 then 3x1 in series (no biases),
    beside the 3x3 and the dilated 2x2. Fuses into one 3x3 depthwise conv.
    """

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.conv_3_3 = dwconv(channels, (3, 3), (stride, stride))
        self.conv_3_w = dwconv(channels, (1, 3), (1, stride), bias=stride == 1)
        self.conv_3_h = dwconv(channels, (3, 1), (stride, 1), bias=stride == 1)
        self.conv_2_2 = dwconv(channels, (2, 2), (stride, stride), dilation=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.conv_3_3(x) + self.conv_3_w(x) + self.conv_3_h(x) + self.conv_2_2(x)
        return self.conv_3_3(x) + self.conv_3_h(self.conv_3_w(x)) + self.conv_2_2(x)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        weight, bias = conv_params64(self.conv_3_3)
        weight = weight + dilated_to_dense(self.conv_2_2.weight.double())
        bias = bias + conv_params64(self.conv_2_2)[1]
        if self.stride == 1:
            for conv in (self.conv_3_w, self.conv_3_h):
                w, b = conv_params64(conv)
                weight, bias = weight + pad_to_kernel(w, 3), bias + b
        else:
            weight = weight + serial_kernel(self.conv_3_w, self.conv_3_h)
        return fused_layer_like(self.conv_3_3, weight, bias)


class RepDWConvM(nn.Module):
    """Medium kernels: 7x7, 5x3, 3x5 and the serial pairs 1x7-7x1 and 1x5-5x1 (no
    biases), all at the given stride (published ``RepDWConvM``). Fuses into one 7x7."""

    def __init__(self, channels: int, stride: int = 1):
        super().__init__()
        s = stride
        self.conv_7_7 = dwconv(channels, (7, 7), (s, s))
        self.conv_5_3 = dwconv(channels, (5, 3), (s, s))
        self.conv_3_5 = dwconv(channels, (3, 5), (s, s))
        self.conv_7_w = dwconv(channels, (1, 7), (1, s), bias=False)
        self.conv_7_h = dwconv(channels, (7, 1), (s, 1), bias=False)
        self.conv_5_w = dwconv(channels, (1, 5), (1, s), bias=False)
        self.conv_5_h = dwconv(channels, (5, 1), (s, 1), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv_7_7(x) + self.conv_5_3(x) + self.conv_3_5(x)
                + self.conv_7_h(self.conv_7_w(x)) + self.conv_5_h(self.conv_5_w(x)))

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        weight, bias = conv_params64(self.conv_7_7)
        for conv in (self.conv_5_3, self.conv_3_5):
            w, b = conv_params64(conv)
            weight, bias = weight + pad_to_kernel(w, 7), bias + b
        weight = weight + serial_kernel(self.conv_7_w, self.conv_7_h)
        weight = weight + pad_to_kernel(serial_kernel(self.conv_5_w, self.conv_5_h), 7)
        return fused_layer_like(self.conv_7_7, weight, bias)


class ChunkConv(nn.Module):
    """Channels in four equal chunks: identity, RepDWConvS, RepDWConvM, and ``conv_l``
    (1x11 then 11x1, both biased: it stays two convs, as a biased first conv does
    not fold exactly on the border), concatenated (published ``ChunkConv``).

    Deploy form: ``conv_s`` (3x3) and ``conv_m`` (7x7), as the published fuse leaves
    them, run in eager PyTorch as one 7x7 depthwise conv over both middle chunks, its
    kernel the 3x3 zero-padded beside the 7x7, built in the forward: one convolution
    instead of two (CPU: 0.95x the latency of two), without storing the padding zeros
    as parameters. Under ``torch.export`` they run as two convs (``_forward_static``).
    """

    def __init__(self, channels: int, deploy: bool = False):
        super().__init__()
        if channels % 4:
            raise ValueError(f'RepNeXt splits channels in four: {channels} is not a multiple '
                             'of 4')
        c = self.chunk = channels // 4
        self.deploy = deploy
        self.conv_s = dwconv(c, (3, 3)) if deploy else RepDWConvS(c)
        self.conv_m = dwconv(c, (7, 7)) if deploy else RepDWConvM(c)
        self.conv_l = nn.Sequential(dwconv(c, (1, 11)), dwconv(c, (11, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.chunk
        if isinstance(self.conv_s, nn.Conv2d):  # deploy (static for TorchScript)
            if not torch.jit.is_scripting():  # TorchScript compiles the eager form only
                if torch.compiler.is_exporting():
                    return self._forward_static(x)
            # the 3x3 centred in a 7x7, by constant pads (a traced graph keeps no
            # shape arithmetic, which coremltools cannot convert)
            weight = torch.cat([F.pad(self.conv_s.weight, [2, 2, 2, 2]), self.conv_m.weight])
            bias = torch.cat([self.conv_s.bias, self.conv_m.bias])
            middle = F.conv2d(x[:, c:3 * c], weight, bias, padding=3, groups=2 * c)
        else:
            middle = torch.cat([self.conv_s(x[:, c:2 * c]), self.conv_m(x[:, 2 * c:3 * c])], 1)
        return torch.cat([x[:, :c], middle, self.conv_l(x[:, 3 * c:])], dim=1)

    def _forward_static(self, x: torch.Tensor) -> torch.Tensor:
        """The deploy form as ``torch.export`` gives it to ExecuTorch: the 3x3 and the
        7x7 as two convs with constant weights (a kernel built in the forward is a
        run-time weight, which XNNPACK does not delegate; one merged 7x7 it runs 1.2x
        slower than the two, its 7x7 depthwise kernels being its slowest)."""
        c = self.chunk
        return torch.cat([x[:, :c], self.conv_s(x[:, c:2 * c]), self.conv_m(x[:, 2 * c:3 * c]),
                          self.conv_l(x[:, 3 * c:])], dim=1)

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        self.conv_s, self.conv_m = self.conv_s.fuse(), self.conv_m.fuse()
        self.deploy = True


class CopyConv(nn.Module):
    """RepDWConvS and RepDWConvM, both at stride 2, on the same input, concatenated:
    twice the channels (published ``CopyConv``)."""

    def __init__(self, channels: int, deploy: bool = False):
        super().__init__()
        self.conv_s = dwconv(channels, (3, 3), (2, 2)) if deploy else RepDWConvS(channels, 2)
        self.conv_m = dwconv(channels, (7, 7), (2, 2)) if deploy else RepDWConvM(channels, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv_s(x), self.conv_m(x)], dim=1)


def channel_mixer(channels: int, norm_cfg: Optional[dict], deploy: bool) -> nn.Sequential:
    """The MLP, ratio 2: ConvNorm 1x1, GELU, ConvNorm 1x1 (keys ``0``, ``2``)."""
    return nn.Sequential(
        conv_bn(channels, 2 * channels, norm_cfg=norm_cfg, names=CONV_NORM, deploy=deploy),
        nn.GELU(),
        conv_bn(2 * channels, channels, norm_cfg=norm_cfg, names=CONV_NORM, deploy=deploy))


class MetaNeXtBlock(nn.Module):
    """``x + channel_mixer(norm(token_mixer(x)))``, token mixer a ChunkConv.

    Deploy form: the BatchNorm folds into the channel mixer's first 1x1 conv
    (a 1x1 conv has no padding that could see the shift), so ``norm`` is an identity.
    """

    def __init__(self, channels: int, drop_path: float = 0., norm_cfg: Optional[dict] = None,
                 deploy: bool = False):
        super().__init__()
        self.deploy = deploy
        self.token_mixer = ChunkConv(channels, deploy)
        self.norm = nn.Identity() if deploy else build_norm2d(
            norm_cfg or dict(type='BN'), channels)
        self.channel_mixer = channel_mixer(channels, norm_cfg, deploy)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.channel_mixer(self.norm(self.token_mixer(x))))

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        fuse_children(self)
        first = self.channel_mixer[0]
        self.channel_mixer[0] = fused_layer_like(first, *fuse_bn_conv1x1(self.norm, first))
        self.norm = nn.Identity()
        self.deploy = True


class Downsample(nn.Module):
    """``y = norm(CopyConv(x))``, output ``y + channel_mixer(y)`` on twice the channels.

    Deploy form: the BatchNorm feeds the residual too, so it folds backwards, into
    the two depthwise convs (a BatchNorm after a conv folds exactly).
    """

    def __init__(self, channels: int, norm_cfg: Optional[dict] = None, deploy: bool = False):
        super().__init__()
        self.deploy = deploy
        self.token_mixer = CopyConv(channels, deploy)
        self.norm = nn.Identity() if deploy else build_norm2d(
            norm_cfg or dict(type='BN'), 2 * channels)
        self.channel_mixer = channel_mixer(2 * channels, norm_cfg, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.token_mixer(x))
        return y + self.channel_mixer(y)

    @torch.no_grad()
    def switch_to_deploy(self):
        if self.deploy:
            return
        fuse_children(self)
        scale, shift = bn_scale_shift(self.norm)
        mixer = self.token_mixer
        for name, half in (('conv_s', 0), ('conv_m', 1)):
            conv = getattr(mixer, name)
            part = slice(half * conv.out_channels, (half + 1) * conv.out_channels)
            weight, bias = conv_params64(conv)
            setattr(mixer, name, fused_layer_like(
                conv, weight * scale[part].view(-1, 1, 1, 1), bias * scale[part] + shift[part]))
        self.norm = nn.Identity()
        self.deploy = True


class RepNeXtStage(nn.Module):
    """``downsample`` (stages 1-3) then ``blocks`` (published ``stages.i``)."""

    def __init__(self, downsample: Optional[nn.Module], blocks: List[nn.Module]):
        super().__init__()
        if downsample is not None:
            self.downsample = downsample
        self.blocks = BlockSequence(*blocks)

    def units(self) -> List[nn.Module]:
        """The downsample (if any) and the blocks, in order: what ``with_cp`` wraps."""
        return ([self.downsample] if hasattr(self, 'downsample') else []) + list(self.blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, 'downsample'):  # static for TorchScript
            x = self.downsample(x) if torch.jit.is_scripting() else run_block(
                self.downsample, x, self.blocks.with_cp)
        return self.blocks(x)


class RepNeXt(RepBackbone):
    """RepNeXt backbone, M0 .. M5.

    Args:
        arch (str | dict): 'm0' .. 'm5' (any case), or ``dict(dims=..., depths=...)``
            (four stage widths, each twice the previous, the first a multiple of 8;
            four depths). Defaults to 'm1'.
        out_indices (Sequence[int] | int): stages whose outputs are returned (strides
            4, 8, 16, 32). Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the stem (``stem``), k the stem and
            ``stages.0`` .. ``stages.{k-1}``. Defaults to -1.
        norm_eval (bool): every BatchNorm in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): ``dict(type='BN')`` or ``'SyncBN'``. Defaults to BN.
        with_cp (bool): activation checkpointing per block. Defaults to False.
        drop_path_rate (float): stochastic depth of the blocks, rising linearly to
            this value over the blocks. Defaults to 0.
        deploy (bool): build the fused form directly. Defaults to False.
        in_channels (int): channels of the input images. Defaults to 3.
        init_cfg (dict | list, optional): initialization config. Defaults to None.

    Example:
        >>> import torch
        >>> from repmobile_mm.models import RepNeXt
        >>> model = RepNeXt('m1', out_indices=(1, 3)).eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 96, 8, 8), (1, 384, 2, 2)]
    """
    family = 'RepNeXt'
    arch_keys = ('depths', )
    arch_settings: Dict[str, dict] = {
        'm0': dict(dims=(40, 80, 160, 320), depths=(2, 2, 9, 1)),
        'm1': dict(dims=(48, 96, 192, 384), depths=(3, 3, 15, 2)),
        'm2': dict(dims=(56, 112, 224, 448), depths=(3, 3, 15, 2)),
        'm3': dict(dims=(64, 128, 256, 512), depths=(3, 3, 13, 2)),
        'm4': dict(dims=(64, 128, 256, 512), depths=(5, 5, 25, 4)),
        'm5': dict(dims=(80, 160, 320, 640), depths=(7, 7, 35, 2)),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'm1',
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 in_channels: int = 3,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(out_indices, frozen_stages, norm_eval, norm_cfg, with_cp, deploy,
                         in_channels, init_cfg)
        self.arch = self.parse_arch(arch)
        self.dims = tuple(self.arch['dims'])
        self.depths = tuple(self.arch['depths'])
        norm_cfg = self.norm_cfg

        self.stem = nn.Sequential(OrderedDict(  # published: stem.stem
            stem=patch_stem(in_channels, self.dims[0], norm_cfg, deploy, names=CONV_NORM)))
        drop_rates = iter(
            torch.linspace(0, drop_path_rate, sum(self.depths), device='cpu').tolist())
        stages = []
        for i, (dim, depth) in enumerate(zip(self.dims, self.depths)):
            downsample = Downsample(self.dims[i - 1], norm_cfg, deploy) if i else None
            blocks = [MetaNeXtBlock(dim, next(drop_rates), norm_cfg, deploy)
                      for _ in range(depth)]
            stages.append(RepNeXtStage(downsample, blocks))
        self.stages = nn.Sequential(*stages)
        guard_checkpoint_form(self, 'RepNeXt backbone', 'stem.stem.0.norm.running_mean',
                              'stem.stem.0.bias')
        self.with_cp = with_cp
        self._freeze_stages()

    @classmethod
    def check_arch(cls, table: dict, arch: dict) -> dict:
        dims, depths = table['dims'], table['depths']
        if dims[0] % 8 or any(d != 2 * p for p, d in zip(dims, dims[1:])):
            raise ValueError('RepNeXt doubles the channels at every downsample and splits them '
                             'in four: dims[0] must be a multiple of 8 and dims[i] == '
                             f'2 * dims[i-1]; got {dims}')
        if any(not isinstance(d, int) or d < 1 for d in depths):
            raise ValueError(f'every stage needs at least one block; got depths={depths}')
        return table

    def forward_stages(self, x: torch.Tensor, take: List[int],
                       stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        self.check_input(x)
        x = self.stem(x)
        taps: List[torch.Tensor] = []
        for index, stage in enumerate(self.stages):
            if index <= stop:
                x = stage(x)
                if index in take:
                    taps.append(x)
        return x, taps

    def prune_stages(self, last: int):
        self.stages = self.stages[:last + 1]

    def frozen_modules(self, num_stages: int) -> List[nn.Module]:
        return [self.stem] + list(self.stages[:num_stages])

    def fuse_modules(self):
        fuse_children(self.stem)
        fuse_children(self.stages)
