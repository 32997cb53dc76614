"""repmobile_mm: re-parameterizable mobile CNN backbones for OpenMMLab 2.0.

Importing the package registers the models into mmpretrain, mmdet, mmseg and timm,
each only if installed; ``repmobile_mm.models`` needs only torch and mmengine.
"""
from .models import *  # noqa: F401,F403
from .integrations import register_all

__version__ = '0.1.0'

register_all()
