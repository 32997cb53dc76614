"""mmengine parts used by the configs and tools (need mmengine and timm, not the mm libraries)."""
from .checkpoint import allow_mmengine_checkpoint_globals
from .hooks import ChannelsLastHook, FiniteLossHook, RawEvalEMAHook
from .optim_wrappers import AGCAmpOptimWrapper, AGCOptimWrapper

# mmengine's own checkpoints (training checkpoints carry its message hub) load under
# torch's weights_only=True wherever repmobile_mm is imported: in our tools and in
# mmengine's own loading (mm inferencers, load_from, resume); only those globals
allow_mmengine_checkpoint_globals()

__all__ = ['AGCAmpOptimWrapper', 'AGCOptimWrapper', 'ChannelsLastHook', 'FiniteLossHook',
           'RawEvalEMAHook',
           'allow_mmengine_checkpoint_globals']
