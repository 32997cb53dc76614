"""mmengine parts used by the configs and tools (need mmengine and timm, not the mm libraries)."""
from .checkpoint import register_checkpoint_loaders
from .hooks import ChannelsLastHook, FiniteLossHook, PreemptionHook, RandomStateHook, RawEvalEMAHook
from .optim_wrappers import AGCAmpOptimWrapper, AGCOptimWrapper, MergedGroupsOptimWrapperConstructor

__all__ = ['AGCAmpOptimWrapper', 'AGCOptimWrapper', 'ChannelsLastHook', 'FiniteLossHook',
           'MergedGroupsOptimWrapperConstructor', 'PreemptionHook', 'RandomStateHook',
           'RawEvalEMAHook', 'register_checkpoint_loaders']
