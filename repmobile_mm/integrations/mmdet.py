"""mmdet registration of the backbones."""
from mmdet.registry import MODELS

from ..models import RepMobile, RepNeXt, RepViT

MODELS.register_module(module=RepMobile)
MODELS.register_module(module=RepViT)
MODELS.register_module(module=RepNeXt)
