"""Plain PyTorch models (need only torch and mmengine)."""
from .backbones import RepMobile, RepMobileBlock
from .heads import RepMobileClassifier, RepMobileNeck
from .repmobile_net import RepMobileNet
from .utils import reparameterize_model

__all__ = [
    'RepMobile', 'RepMobileBlock', 'RepMobileClassifier', 'RepMobileNeck', 'RepMobileNet',
    'reparameterize_model'
]
