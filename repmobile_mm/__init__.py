"""repmobile_mm: re-parameterizable mobile CNN backbones for OpenMMLab 2.0.

Importing the package registers the models into mmpretrain, mmdet, mmseg and timm,
each only if installed, and the engine parts (AGC optimizer wrappers, the EMA hook)
into mmengine; ``repmobile_mm.models`` needs only torch, mmengine and timm.
"""
from . import engine  # noqa: F401  (registers the optimizer wrappers and hooks)
from .models import *  # noqa: F401,F403
from .integrations import register_all

__version__ = '0.1.0'

register_all()
