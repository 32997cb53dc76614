from .base import RepBackbone
from .repmobile import RepMobile, RepMobileBlock
from .repnext import MetaNeXtBlock, RepNeXt
from .repvit import RepVGGDW, RepViT, RepViTBlock

__all__ = ['MetaNeXtBlock', 'RepBackbone', 'RepMobile', 'RepMobileBlock', 'RepNeXt', 'RepViT',
           'RepViTBlock', 'RepVGGDW']
