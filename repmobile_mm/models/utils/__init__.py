from .fuse import fused_copy, reparameterize_model
from .norm import build_norm2d

__all__ = ['build_norm2d', 'fused_copy', 'reparameterize_model']
