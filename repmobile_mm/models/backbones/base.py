"""What every backbone of the suite shares, written once.

Stage selection and its errors, ``frozen_stages`` / ``norm_eval`` / ``with_cp``,
the input check, and ``switch_to_deploy`` (fuse, then freeze again: fused layers
are new parameters). A family states its stem and stages (``frozen_modules``)
and how it fuses (``fuse_modules``).
"""
import contextlib
import copy
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


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
    num_stages = 4
    dims: Tuple[int, ...]  # the stage widths, set by the family

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
        self.with_cp = with_cp
        self.deploy = deploy
        self.in_channels = in_channels

    @classmethod
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

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{self.family} expects images of shape (N, {self.in_channels}, '
                             f'H, W); got an input of shape {tuple(x.shape)}')

    def run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``block(x)``, with activation checkpointing when ``with_cp`` applies.

        The backward pass runs the block's forward again; its BatchNorms then
        normalize with the same batch statistics but must not count the batch a
        second time, so their running statistics are put back afterwards.
        """
        if self.with_cp and self.training and x.requires_grad:
            return cp.checkpoint(
                block, x, use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(), _kept_running_stats(block)))
        return block(x)

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

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fuse the whole backbone in place (idempotent); the result equals the
        training form in eval mode at every input size."""
        if self.deploy:
            return
        self.fuse_modules()
        self.deploy = True
        self._freeze_stages()


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
