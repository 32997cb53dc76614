"""Optimizer wrappers for mmengine: adaptive gradient clipping (the published recipe's
``--clip-mode agc``) and a constructor that keeps ``paramwise_cfg``'s groups few.

mmengine clips only by norm or value; the AGC wrappers clip with timm's own
``adaptive_clip_grad`` instead. Under AMP the gradients are unscaled first, as
mmengine's ``AmpOptimWrapper`` does for its own clipping.
"""
from typing import List

from mmengine.optim import AmpOptimWrapper, DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS
from timm.utils.agc import adaptive_clip_grad


class AGCMixin:
    """Replace mmengine's gradient clipping by timm's adaptive gradient clipping.

    Args:
        agc (dict): keyword arguments of ``timm.utils.agc.adaptive_clip_grad``,
            e.g. ``dict(clip_factor=5.0)`` for the published recipe.
    """

    def __init__(self, *, agc: dict, **kwargs):
        if kwargs.get('clip_grad') is not None:
            raise ValueError('use either agc or clip_grad in the optim_wrapper, not both')
        if not isinstance(agc, dict) or 'clip_factor' not in agc:
            raise ValueError("agc must be a dict with at least 'clip_factor', e.g. "
                             f'dict(clip_factor=5.0); got {agc!r}')
        super().__init__(**kwargs)
        # A non-empty clip_grad_kwargs makes step() unscale (AMP) and call _clip_grad.
        self.clip_grad_kwargs = dict(agc)

    def _clip_grad(self) -> None:
        params = [
            p for group in self.optimizer.param_groups for p in group['params']
            if p.requires_grad and p.grad is not None
        ]
        adaptive_clip_grad(params, **self.clip_grad_kwargs)


@OPTIM_WRAPPERS.register_module()
class AGCOptimWrapper(AGCMixin, OptimWrapper):
    """``OptimWrapper`` with adaptive gradient clipping."""


@OPTIM_WRAPPERS.register_module()
class AGCAmpOptimWrapper(AGCMixin, AmpOptimWrapper):
    """``AmpOptimWrapper`` with adaptive gradient clipping (what ``--amp`` selects)."""


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MergedGroupsOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's constructor with the parameters whose options are equal in one group.

    With a ``paramwise_cfg`` mmengine gives every parameter a group of its own (772 for
    RepNeXt-M1), and the optimizer runs its loop once per group. Merged (two or three
    groups for the usual no-decay rules), each parameter gets the same update and a
    fused optimizer (``fused=True``) one kernel per group: RepNeXt-M1's AdamW step took
    8-12 ms instead of 60-73 ms of a ~0.35 s digits step (side by side in one process,
    2 CPU cores, 2026-12-06). The merged groups keep the order in which their first
    parameter came.
    """

    def add_params(self, params: List[dict], module, prefix: str = '', **kwargs) -> None:
        super().add_params(params, module, prefix, **kwargs)
        if prefix:  # mmengine's recursion into the submodules
            return
        merged = {}
        for group in params:
            options = tuple(sorted((k, repr(v)) for k, v in group.items() if k != 'params'))
            merged.setdefault(options, dict(group, params=[]))['params'].extend(group['params'])
        params[:] = list(merged.values())
