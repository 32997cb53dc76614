"""Plain PyTorch models (need torch, mmengine and timm's layers, no mm task library)."""
from .backbones import (MetaNeXtBlock, RepMobile, RepMobileBlock, RepNeXt, RepVGGDW, RepViT,
                        RepViTBlock)
from .heads import BNLinearClassifier, NormLinearClassifier, RepMobileClassifier, RepMobileNeck
from .nets import RepMobileNet, RepNeXtNet, RepViTNet
from .utils import fused_copy, reparameterize_model

__all__ = [
    'BNLinearClassifier', 'MetaNeXtBlock', 'NormLinearClassifier', 'RepMobile', 'RepMobileBlock',
    'RepMobileClassifier', 'RepMobileNeck', 'RepMobileNet', 'RepNeXt', 'RepNeXtNet', 'RepVGGDW',
    'RepViT', 'RepViTBlock', 'RepViTNet', 'fused_copy', 'reparameterize_model'
]
