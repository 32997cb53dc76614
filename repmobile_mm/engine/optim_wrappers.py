"""Adaptive gradient clipping (the published recipe's ``--clip-mode agc``) for mmengine.

mmengine clips only by norm or value; these wrappers clip with timm's own
``adaptive_clip_grad`` instead. Under AMP the gradients are unscaled first, as
mmengine's ``AmpOptimWrapper`` does for its own clipping.
"""
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
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
