from .base import RepBackbone
from .repmobile import RepMobile, RepMobileBlock
from .repvit import RepViT, RepViTBlock, RepVGGDW

__all__ = ['RepBackbone', 'RepMobile', 'RepMobileBlock', 'RepViT', 'RepViTBlock', 'RepVGGDW']
