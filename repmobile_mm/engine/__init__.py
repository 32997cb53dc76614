"""mmengine parts used by the configs and tools (need mmengine and timm, not the mm libraries)."""
from .checkpoint import allow_mmengine_checkpoint_globals
from .optim_wrappers import AGCAmpOptimWrapper, AGCOptimWrapper

__all__ = ['AGCAmpOptimWrapper', 'AGCOptimWrapper', 'allow_mmengine_checkpoint_globals']
