from .base import RepBackbone
from .repmobile import RepMobile, RepMobileBlock
from .repnext import MetaNeXtBlock, RepNeXt
from .repvit import RepViT, RepViTBlock, RepVGGDW

__all__ = ['MetaNeXtBlock', 'RepBackbone', 'RepMobile', 'RepMobileBlock', 'RepNeXt', 'RepViT',
           'RepViTBlock', 'RepVGGDW']
