"""mmdet registration of the backbone."""
from mmdet.registry import MODELS

from ..models import RepMobile

MODELS.register_module(module=RepMobile)
