"""What every backbone of the suite shares, written once.

Stage selection and its errors, ``frozen_stages`` / ``norm_eval`` / ``with_cp``,
the input check, and ``switch_to_deploy`` (fuse, then freeze again: fused layers
are new parameters). A family states its stem and stages (``frozen_modules``),
how it runs them (``forward_stages``), how it fuses (``fuse_modules``) and how
stages after a tap are dropped (``prune_stages``).

Forwards stay scriptable (TorchScript) and traceable (torch.fx): what neither can
compile (activation checkpointing) sits behind ``torch.jit.is_scripting()``, and
the input check is a function that torch.fx keeps as one call in the graph.
"""
import contextlib
import copy
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.fx
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import CheckpointError


def check_images(x: torch.Tensor, channels: int, family: str) -> None:
    """A one-line error unless ``x`` is a batch of ``channels``-channel images."""
    if x.dim() != 4 or x.shape[1] != channels:
        shape = ', '.join([str(size) for size in x.shape])
        raise ValueError(f'{family} expects images of shape (N, {channels}, H, W); got an '
                         f'input of shape ({shape})')


# torch.fx records the check as one call (run with the real input) instead of
# tracing into its shape comparison, which a symbolic tensor cannot decide.
torch.fx.wrap('check_images')


def run_block(block: nn.Module, x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """``block(x)``, with activation checkpointing when ``with_cp`` applies.

    The backward pass runs the block's forward again; its BatchNorms then
    normalize with the same batch statistics but must not count the batch a
    second time, so their running statistics are put back afterwards. Callers
    reach it behind ``torch.jit.is_scripting()``: TorchScript cannot compile it.
    """
    if with_cp and block.training and x.requires_grad:
        return cp.checkpoint(
            block, x, use_reentrant=False,
            context_fn=lambda: (contextlib.nullcontext(), _kept_running_stats(block)))
    return block(x)


class BlockSequence(nn.Sequential):
    """Blocks run in order (keys ``0``, ``1``, ...), each checkpointed when ``with_cp``."""

    def __init__(self, *blocks: nn.Module):
        super().__init__(*blocks)
        self.with_cp = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x) if torch.jit.is_scripting() else run_block(block, x, self.with_cp)
        return x


class RepBackbone(BaseModule):
    """Base of the re-parameterizable backbones (four stages, strides 4 to 32).

    Args:
        out_indices (Sequence[int] | int): stages whose outputs are returned.
            Negative indices count from the last stage.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            stages 0 .. k-1 (parameters fixed, BN in eval mode).
        norm_eval (bool): keep every BatchNorm in eval mode while training.
        norm_cfg (dict): BatchNorm config, ``type`` one of 'BN', 'SyncBN'.
        with_cp (bool): activation checkpointing of each block in training.
        deploy (bool): build the fused inference form directly.
        in_channels (int): channels of the input images.
    """
    family = ''  # the name in messages
    # named variants -> arch tables; a custom arch has 'dims' and ``arch_keys`` (one
    # entry per stage each), and may have ``arch_options``
    arch_settings: Dict[str, dict] = {}
    arch_keys: Tuple[str, ...] = ()
    arch_options: Tuple[str, ...] = ()
    __constants__ = ['family']  # for TorchScript, which sees no other class attribute
    num_stages = 4
    dims: Tuple[int, ...]  # the stage widths, set by the family
    # what TorchScript must not compile (mmengine's is_init setter takes any value)
    __jit_unused_properties__ = ['is_init', 'out_channels', 'with_cp']

    def __init__(self,
                 out_indices: Union[int, Sequence[int]] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: Optional[dict] = None,
                 with_cp: bool = False,
                 deploy: bool = False,
                 in_channels: int = 3,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.out_indices = self.parse_out_indices(out_indices)
        if not (isinstance(frozen_stages, int) and -1 <= frozen_stages <= self.num_stages):
            raise ValueError(f'frozen_stages must be an int from -1 (nothing) to '
                             f'{self.num_stages} (stem and all stages); got {frozen_stages!r}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.norm_cfg = copy.deepcopy(norm_cfg) if norm_cfg else dict(type='BN')
        self._with_cp = with_cp  # given to the stages by the family, once built
        self.deploy = deploy
        self.in_channels = in_channels

    @classmethod
    @classmethod
    def parse_arch(cls, arch: Union[str, dict]) -> dict:
        """A named variant's table, or a custom table checked: 'dims' and ``arch_keys``
        with one entry per stage each, then the family's ``check_arch``."""
        keys = ('dims', ) + cls.arch_keys
        if isinstance(arch, str):
            name = cls.arch_name(arch)
            if name not in cls.arch_settings:
                listed = ', '.join(f'{key}=...' for key in keys + cls.arch_options)
                raise ValueError(f'unknown {cls.family} arch {arch!r}; choose one of '
                                 f'{cls.arch_choices()} or a dict({listed})')
            return dict(cls.arch_settings[name])
        if not isinstance(arch, dict) or not set(keys) <= set(arch) <= \
                set(keys + cls.arch_options):
            optional = ' (and optionally {})'.format(
                ', '.join(repr(k) for k in cls.arch_options)) if cls.arch_options else ''
            raise ValueError(f'a custom {cls.family} arch is a dict with exactly the keys '
                             f"{' and '.join(repr(k) for k in keys)}{optional}; got {arch!r}")
        table = {key: tuple(arch[key]) for key in keys}
        if any(len(value) != cls.num_stages for value in table.values()):
            raise ValueError(f"arch {' and '.join(keys)} need {cls.num_stages} entries each; "
                             f"got {', '.join(f'{k}={v}' for k, v in table.items())}")
        return cls.check_arch(table, arch)

    @classmethod
    def arch_name(cls, arch: str) -> str:
        """The ``arch_settings`` key a variant name stands for (names are any case)."""
        return arch.lower()

    @classmethod
    def arch_choices(cls) -> str:
        return f'{sorted(cls.arch_settings)} (any case)'

    @classmethod
    def check_arch(cls, table: dict, arch: dict) -> dict:
        """The family's checks of a custom table (``arch``: as given, with its options)."""
        return table

    def parse_out_indices(cls, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        parsed = []
        for index in out_indices:
            if not isinstance(index, int) or not -cls.num_stages <= index < cls.num_stages:
                raise ValueError(f'out_indices must be stage indices in 0..{cls.num_stages - 1} '
                                 f'(or -{cls.num_stages}..-1); got {tuple(out_indices)}')
            parsed.append(index % cls.num_stages)
        return tuple(parsed)

    @property
    def out_channels(self) -> List[int]:
        """Channels of each returned output (an FPN's ``in_channels``)."""
        return [self.dims[i] for i in self.out_indices]

    @property
    def with_cp(self) -> bool:
        """Activation checkpointing of each block in training (settable at any time)."""
        return self._with_cp

    @with_cp.setter
    def with_cp(self, enable: bool):
        self._with_cp = enable
        for module in self.modules():
            if isinstance(module, BlockSequence):
                module.with_cp = enable

    def check_input(self, x: torch.Tensor) -> None:
        check_images(x, self.in_channels, self.family)  # called here, where fx wraps it

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The outputs of the ``out_indices`` stages (strides 4 to 32)."""
        return tuple(self.forward_stages(x, list(self.out_indices), max(self.out_indices))[1])

    def forward_stages(self, x: torch.Tensor, take: List[int],
                       stop: int) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Run the stem and the stages up to ``stop``: the last output, and the
        outputs of the stages in ``take`` (scriptable, traceable)."""
        raise NotImplementedError

    def prune_stages(self, last: int):
        """Drop every stage after ``last`` (timm's ``prune_intermediate_layers``)."""
        raise NotImplementedError

    def frozen_modules(self, num_stages: int) -> List[nn.Module]:
        """The stem and the first ``num_stages`` stages."""
        raise NotImplementedError

    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        for module in self.frozen_modules(self.frozen_stages):
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def fuse_modules(self):
        """Fuse every re-parameterizable part in place."""
        raise NotImplementedError

    def init_weights(self):
        """mmengine's initialization, except that a ``Pretrained`` init_cfg is loaded by
        :func:`load_pretrained`: a published release file (converted by the package's
        checkpoint loader), a whole model's checkpoint with or without ``prefix``, or
        the backbone's own weights, and an error where the checkpoint does not fill the
        backbone (mmengine's non-strict load would train on a random one)."""
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
        if not pretrained or self.is_init:
            return super().init_weights()
        given = self.init_cfg
        self.init_cfg = [c for c in cfgs if c not in pretrained] or None
        try:
            super().init_weights()
        finally:
            self.init_cfg = given
        for cfg in pretrained:
            load_pretrained(self, cfg['checkpoint'], cfg.get('prefix'),
                            cfg.get('map_location', 'cpu'))

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fuse the whole backbone in place (idempotent); the result equals the
        training form in eval mode at every input size."""
        if self.deploy:
            return
        self.fuse_modules()
        self.deploy = True
        self._freeze_stages()


def load_pretrained(backbone: RepBackbone, checkpoint: str, prefix: Optional[str] = None,
                    map_location='cpu') -> None:
    """Load the backbone's weights from ``checkpoint`` (a path or URL, read by mmengine's
    loader): those under ``prefix``, or, without one, those under ``backbone.`` where
    the checkpoint is a whole model's. Every weight of the backbone must be there with
    its shape (a one-line :class:`CheckpointError` names what is not); the
    checkpoint's other entries (heads, stages after the last tap) are left."""
    from mmengine.logging import print_log
    from mmengine.runner.checkpoint import CheckpointLoader
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location=map_location)
    state = loaded.get('state_dict', loaded) if isinstance(loaded, dict) else {}
    if prefix is None and any(str(k).startswith('backbone.') for k in state):
        prefix = 'backbone.'
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state = {k[len(prefix):]: v for k, v in state.items() if str(k).startswith(prefix)}
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(v.shape)}' for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or shapes:
        found = ', '.join(list(state)[:2]) or 'none'
        what = [f'{len(missing)} of its {len(own)} weights missing ({", ".join(missing[:3])}'
                f'{", ..." if len(missing) > 3 else ""}; the checkpoint has {found}, ...)'
                ] if missing else []
        what += [f'{len(shapes)} of another shape ({", ".join(shapes[:2])})'] if shapes else []
        form = 'fused' if backbone.deploy else 'training'
        raise CheckpointError(f'{checkpoint}{f" under {prefix!r}" if prefix else ""} does not '
                              f'fit the {form} form of this {backbone.family} backbone: '
                              f'{"; ".join(what)}. Expected a published release file, a '
                              f'checkpoint of a model with this backbone (backbone.*), or its '
                              'own weights')
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)
    unused = len(state) - len(own)
    print_log(f'{backbone.family}: {len(own)} weights loaded from {checkpoint}'
              f'{f" ({unused} others in it not used)" if unused else ""}', logger='current')


@contextlib.contextmanager
def _kept_running_stats(module: nn.Module) -> Iterator[None]:
    """Restore the running statistics of ``module``'s BatchNorms on exit."""
    buffers = [b for m in module.modules() if isinstance(m, _BatchNorm)
               for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]
    saved = [b.clone() for b in buffers]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)
