"""Plain PyTorch models (need torch, mmengine and timm's layers, no mm task library)."""
from .backbones import RepMobile, RepMobileBlock, RepViT, RepViTBlock, RepVGGDW
from .heads import BNLinearClassifier, RepMobileClassifier, RepMobileNeck
from .nets import RepMobileNet, RepViTNet
from .utils import reparameterize_model

__all__ = [
    'BNLinearClassifier', 'RepMobile', 'RepMobileBlock', 'RepMobileClassifier', 'RepMobileNeck',
    'RepMobileNet', 'RepVGGDW', 'RepViT', 'RepViTBlock', 'RepViTNet', 'reparameterize_model'
]
