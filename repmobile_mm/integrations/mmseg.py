"""mmseg registration of the backbone."""
from mmseg.registry import MODELS

from ..models import RepMobile

MODELS.register_module(module=RepMobile)
