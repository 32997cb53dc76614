"""mmengine parts used by the configs and tools (need mmengine and timm, not the mm libraries)."""
from .checkpoint import allow_mmengine_checkpoint_globals, register_checkpoint_loaders
from .hooks import ChannelsLastHook, FiniteLossHook, RawEvalEMAHook
from .optim_wrappers import AGCAmpOptimWrapper, AGCOptimWrapper

__all__ = ['AGCAmpOptimWrapper', 'AGCOptimWrapper', 'ChannelsLastHook', 'FiniteLossHook',
           'RawEvalEMAHook',
           'allow_mmengine_checkpoint_globals', 'register_checkpoint_loaders']
