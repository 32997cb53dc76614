"""RepMobile backbone with an exact, directly buildable deploy form.

RepMobile: the published release of zhanghao5201 (code and ImageNet-1K weights, shared
as Google Drive links; shared/specs/repmobile.md records its architecture, figures and
keys). Its publishers state no paper identifier or license with the release.

Parameter names follow the published checkpoints (``stem.*``, ``layer0.*`` ..
``layer3.*``), so published weights load with ``strict=True``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ..utils.fuse import (bn_scale_shift, conv_params64, copy_params, fuse_bn_conv1x1,
                          fuse_conv_bn_in_sequential, guard_checkpoint_form)
from ..utils.gated_activation import gated_shift, mul_add
from ..utils.norm import build_norm2d
from .base import BlockSequence, RepBackbone

# torch.fx keeps the gate as one call: its kernel dispatch looks at the tensor
torch.fx.wrap('gated_shift')

# Above this |BN shift / BN scale| the pad shift would cost a float32 deploy block
# more than ~1e-4 absolute on its identity path; such blocks normalize explicitly.
MAX_PAD_SHIFT = 1e3


class RepMobileBlock(nn.Module):
    """One RepMobile block: 1x1 conv, ClaSiLU gated activation, 3x3 depthwise conv.

    Training form (published structure)::

        y = conv_pw(x) + identity(x)               # identity: x, or [x; x] at stride 2
        a = y * sigmoid(y + ClaSiLU_gate(x))       # gate: per-channel, from the mean of x
        out = conv_dw(a) + down(a)                 # down: identity or 3x3/2 average pool

    Deploy form: one 1x1 conv, a linear gate on the channel means (a 1x1 conv under
    ``torch.export``), one depthwise conv. ``conv_dw`` normalizes *before* its zero
    padding, so the padded taps never see the BN shift ``t``: folding ``t`` into a bias
    is wrong on the border. The exact form has no per-size state and no shape-dependent
    branches:

    - *pad shift* (every block whose BN scales ``s`` are non-zero and not tiny next
      to ``t``): the activation is shifted by ``t / s`` inside the kernel that applies
      the gate, so the zero padding is right for the BN'd input. At stride 1 the
      identity is the kernel centre, which always sees the shifted activation: the
      bias takes the shift back. At stride 2 the average pool adds 1/9 to every tap;
      its padded taps did not see the shift, so the shift comes back off scaled by
      the share of each window inside the map (1 inside, 4/9 or 6/9 on the border),
      a 1-channel map computed at run time (under ``torch.export``, which fixes the
      size, the same correction comes from a second depthwise conv instead).
    - *explicit norm* (a zero or tiny BN scale, where the shift would cost float32
      precision): the BN runs as one per-channel ``s * a + t`` before the zero-padded
      conv, and the identity or average pool is added from the activation.

    On GPU in eager mode the gate and the shift run as one Triton kernel
    (:mod:`..utils.gated_activation`).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 norm_cfg: Optional[dict] = None,
                 deploy: bool = False):
        super().__init__()
        if stride not in (1, 2) or out_channels != in_channels * stride:
            raise ValueError('a RepMobile block keeps the channels at stride 1 and doubles '
                             f'them at stride 2; got {in_channels} -> {out_channels} at '
                             f'stride {stride}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.deploy = deploy
        norm_cfg = norm_cfg or dict(type='BN')
        if deploy:
            self._build_deploy_modules()
            return
        self.conv_pw = nn.Sequential(
            build_norm2d(norm_cfg, in_channels), nn.Conv2d(in_channels, out_channels, 1))
        self.conv_dw = nn.Sequential(
            build_norm2d(norm_cfg, out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, groups=out_channels))
        self.ClaSiLU_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), build_norm2d(norm_cfg, in_channels),
            nn.Conv2d(in_channels, out_channels, 1))
        self.down = (nn.AvgPool2d(3, 2, 1, count_include_pad=True)
                     if stride == 2 else nn.Identity())

    def _build_deploy_modules(self):
        cin, cout = self.in_channels, self.out_channels
        self.pw_reparam = nn.Conv2d(cin, cout, 1)
        self.gate_reparam = nn.Conv2d(cin, cout, 1)
        self.dw_reparam = nn.Conv2d(cout, cout, 3, self.stride, 1, groups=cout)
        # pad shift: added to the activation before the zero padding
        self.register_buffer('pad_shift', torch.zeros(cout))
        # explicit norm: u = norm_scale * a + norm_shift before the zero padding
        self.register_buffer('explicit_norm', torch.tensor(False))
        self.register_buffer('norm_scale', torch.zeros(cout))
        self.register_buffer('norm_shift', torch.zeros(cout))
        if self.stride == 2:
            # the explicit form's 3x3/2 average pool (zeros counted) as a depthwise
            # conv: one fast kernel where channels-last avg_pool2d is slow on GPU
            self.register_buffer('avg_kernel', torch.full((cout, 1, 3, 3), 1 / 9),
                                 persistent=False)
        self.use_pad_shift = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # hasattr, not self.deploy: TorchScript then compiles only the form present
        if hasattr(self, 'pw_reparam'):
            return self._forward_deploy(x)
        else:
            return self._forward_train(x)

    def _forward_train(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_pw(x)
        if self.stride == 1:
            y = y + x
        else:  # add x to both halves of the channels without materializing [x; x]
            y = (y.unflatten(1, (2, self.in_channels)) + x.unsqueeze(1)).flatten(1, 2)
        y = y * torch.sigmoid(y + self.ClaSiLU_gate(x))
        return self.conv_dw(y) + self.down(y)

    def _forward_deploy(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw_reparam(x)
        gate = self._gate(x)
        if not self.use_pad_shift:
            return self._forward_explicit_norm(y, gate)
        if self.stride == 1:
            return self.dw_reparam(gated_shift(y, gate, self.pad_shift))
        if not torch.jit.is_scripting():  # TorchScript compiles the eager form only
            if torch.compiler.is_exporting():
                return self._forward_static_pad_shift(y, gate)
        out = self.dw_reparam(gated_shift(y, gate, self.pad_shift))
        window_share = F.avg_pool2d(torch.ones_like(y[:1, :1]), 3, 2, 1)
        return mul_add(out, self.pad_shift.view(-1, 1, 1), window_share, value=-1.0)

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        """The (N, C, 1, 1) gate from the channel means. Eager PyTorch and onnxruntime
        run it as one GEMM (onnxruntime took RepMobile-S 1.22x longer with a 1x1 conv on
        1x1 maps); under ``torch.export`` it is the 1x1 conv on 4-D means, which XNNPACK
        delegates (a 2-D ``mean`` and ``addmm`` stay outside it)."""
        if not torch.jit.is_scripting():  # TorchScript compiles the eager form only
            if torch.compiler.is_exporting():
                return self.gate_reparam(x.mean((2, 3), keepdim=True))
        gate = F.linear(x.mean((2, 3)), self.gate_reparam.weight.flatten(1),
                        self.gate_reparam.bias)
        return gate[:, :, None, None]

    def _forward_static_pad_shift(self, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The stride-2 pad shift without a map of the input's size (what torch.export
        gives ExecuTorch): the average pool of ``act - shifted``, ``-pad_shift`` inside
        the map and zero in the padding, is the window-share correction. Two
        depthwise convs where the eager form has one (slower there, by a full pass)."""
        act = y * torch.sigmoid(y + gate)
        shifted = act + self.pad_shift.view(-1, 1, 1)
        return self.dw_reparam(shifted) + F.conv2d(act - shifted, self.avg_kernel, None, 2, 1,
                                                   groups=self.out_channels)

    def _forward_explicit_norm(self, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        act = y * torch.sigmoid(y + gate)
        out = self.dw_reparam(mul_add(self.norm_shift.view(-1, 1, 1),
                                      self.norm_scale.view(-1, 1, 1), act))
        if hasattr(self, 'avg_kernel'):  # stride 2
            return out + F.conv2d(act, self.avg_kernel, None, 2, 1, groups=self.out_channels)
        else:
            return out + act

    @torch.no_grad()
    def switch_to_deploy(self):
        """Replace the training branches by the fused deploy form (idempotent)."""
        if self.deploy:
            return
        cin, stride = self.in_channels, self.stride
        # 1x1 conv with the BN before it and the identity: +I, or +[I; I] at stride 2.
        pw_weight, pw_bias = fuse_bn_conv1x1(*self.conv_pw)
        pw_weight = pw_weight + torch.eye(cin, dtype=torch.float64,
                                          device=pw_weight.device).repeat(stride, 1)
        gate_weight, gate_bias = fuse_bn_conv1x1(self.ClaSiLU_gate[1], self.ClaSiLU_gate[2])
        scale, shift = bn_scale_shift(self.conv_dw[0])
        dw_weight, dw_bias = conv_params64(self.conv_dw[1])
        use_pad_shift = bool(
            (scale != 0).all() and (shift / scale).abs().max() <= MAX_PAD_SHIFT)
        if use_pad_shift:
            pad_shift = shift / scale
            dw_weight = dw_weight * scale.view(-1, 1, 1, 1)
            if stride == 1:
                dw_weight[:, 0, 1, 1] += 1  # the identity
                dw_bias = dw_bias - pad_shift  # the identity tap saw the shifted activation
            else:
                dw_weight += 1 / 9  # the average pool; the forward takes the shift back

        ref = self.conv_pw[1].weight
        for name in ('conv_pw', 'conv_dw', 'ClaSiLU_gate', 'down'):
            delattr(self, name)
        self.deploy = True
        self._build_deploy_modules()
        self.to(device=ref.device, dtype=ref.dtype)
        copy_params(self.pw_reparam, pw_weight, pw_bias)
        copy_params(self.gate_reparam, gate_weight, gate_bias)
        copy_params(self.dw_reparam, dw_weight, dw_bias)
        if use_pad_shift:
            self.pad_shift.copy_(pad_shift)
        else:
            self.norm_scale.copy_(scale)
            self.norm_shift.copy_(shift)
        self.explicit_norm.fill_(not use_pad_shift)
        self.use_pad_shift = use_pad_shift

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        if hasattr(self, 'avg_kernel'):  # 1/9 rounded in the new dtype, not cast from float32
            self.avg_kernel.fill_(1 / 9)
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if self.deploy:  # the form the fused weights were made for
            self.use_pad_shift = not bool(self.explicit_norm)


class Stem(nn.Sequential):
    """3x3/2 conv, BN, ReLU (published ``stem.0`` .. ``stem.2``). It fuses itself in
    place, so that a walk over the children (timm's ``reparameterize_model``) fuses
    it too; the BN's place then holds an identity."""

    def __init__(self, in_channels: int, channels: int, norm_cfg: dict, deploy: bool = False):
        if deploy:
            layers = [nn.Conv2d(in_channels, channels, 3, 2, 1), nn.Identity()]
        else:
            layers = [nn.Conv2d(in_channels, channels, 3, 2, 1, bias=False),
                      build_norm2d(norm_cfg, channels)]
        super().__init__(*layers, nn.ReLU(inplace=True))

    @torch.no_grad()
    def switch_to_deploy(self):
        if not isinstance(self[1], nn.Identity):
            fuse_conv_bn_in_sequential(self)


class RepMobile(RepBackbone):
    """RepMobile backbone.

    Args:
        arch (str | dict): 'S', 'M', 'L' (any case), or a dict with ``dims`` (four
            stage widths, each twice the previous) and ``blocks`` (four depths).
            Defaults to 'S'.
        out_indices (Sequence[int] | int): stages whose outputs are returned (strides
            4, 8, 16, 32). Defaults to (0, 1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the stem (``stem``), k the stem and
            ``layer0`` .. ``layer{k-1}``. Defaults to -1.
        norm_eval (bool): every BatchNorm in eval mode while training. Defaults to False.
        norm_cfg (dict, optional): ``dict(type='BN')`` or ``'SyncBN'``. Defaults to BN.
        with_cp (bool): activation checkpointing per block. Defaults to False.
        deploy (bool): build the fused form directly. Defaults to False.
        in_channels (int): channels of the input images. Defaults to 3.
        init_cfg (dict | list, optional): Kaiming convolutions, unit BatchNorms.

    Example:
        >>> import torch
        >>> from repmobile_mm.models import RepMobile
        >>> model = RepMobile('S').eval()
        >>> [tuple(out.shape) for out in model(torch.rand(1, 3, 64, 64))]
        [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> model.switch_to_deploy()  # fused in place: no BatchNorm, the same outputs
    """
    family = 'RepMobile'
    arch_keys = ('blocks', )
    arch_settings: Dict[str, dict] = {
        's': dict(dims=(64, 128, 256, 512), blocks=(3, 6, 12, 3)),
        'm': dict(dims=(80, 160, 320, 640), blocks=(3, 6, 15, 3)),
        'l': dict(dims=(96, 192, 384, 768), blocks=(4, 8, 20, 8)),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'S',
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 deploy: bool = False,
                 in_channels: int = 3,
                 init_cfg: Optional[Union[dict, list]] = None):
        if init_cfg is None:
            init_cfg = [
                dict(type='Kaiming', layer='Conv2d', mode='fan_out', bias=0),
                dict(type='Constant', layer=['_BatchNorm'], val=1, bias=0),
            ]
        super().__init__(out_indices, frozen_stages, norm_eval, norm_cfg, with_cp, deploy,
                         in_channels, init_cfg)
        self.arch = self.parse_arch(arch)
        self.dims = tuple(self.arch['dims'])
        self.blocks = tuple(self.arch['blocks'])

        stem_channels = self.dims[0] // 2
        self.stem = Stem(self.in_channels, stem_channels, self.norm_cfg, deploy)
        prev = stem_channels
        for i, (dim, depth) in enumerate(zip(self.dims, self.blocks)):
            blocks = [RepMobileBlock(prev, dim, 2, self.norm_cfg, deploy)]
            blocks += [RepMobileBlock(dim, dim, 1, self.norm_cfg, deploy) for _ in range(depth - 1)]
            self.add_module(f'layer{i}', BlockSequence(*blocks))
            prev = dim
        guard_checkpoint_form(self, 'RepMobile backbone', 'stem.1.running_mean', 'stem.0.bias')
        self.with_cp = with_cp
        self._freeze_stages()

    @classmethod
    def arch_choices(cls) -> str:
        return f"{sorted(k.upper() for k in cls.arch_settings)} (any case)"

    @classmethod
    def check_arch(cls, table: dict, arch: dict) -> dict:
        dims, blocks = table['dims'], table['blocks']
        if dims[0] % 2 or any(d != 2 * p for p, d in zip(dims, dims[1:])):
            raise ValueError('RepMobile doubles the channels at every stride-2 block: dims[0] '
                             f'must be even and dims[i] == 2 * dims[i-1]; got {dims}')
        if any(not isinstance(b, int) or b < 1 for b in blocks):
            raise ValueError(f'every stage needs at least one block; got blocks={blocks}')
        return table

    def forward_stages(self, x: torch.Tensor, take: List[int],
                       stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        self.check_input(x)
        x = self.stem(x)
        taps: List[torch.Tensor] = []
        for index in range(stop + 1):
            x = self.run_stage(index, x)
            if index in take:
                taps.append(x)
        return x, taps

    def run_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``index``: the published keys name each stage, and TorchScript
        indexes no attributes by number."""
        if index == 0:
            return self.layer0(x)
        if index == 1:
            return self.layer1(x)
        if index == 2:
            return self.layer2(x)
        return self.layer3(x)

    def prune_stages(self, last: int):
        for index in range(last + 1, self.num_stages):
            setattr(self, f'layer{index}', BlockSequence())

    def frozen_modules(self, num_stages: int) -> List[nn.Module]:
        return [self.stem] + [getattr(self, f'layer{i}') for i in range(num_stages)]

    def fuse_modules(self):
        self.stem.switch_to_deploy()
        for module in self.modules():
            if isinstance(module, RepMobileBlock):
                module.switch_to_deploy()
