"""repmobile_mm: re-parameterizable mobile CNN backbones for OpenMMLab 2.0 and timm.

Importing the package registers the backbones and the RepMobile neck into mmengine's
root ``MODELS`` registry (mmpretrain's, mmdet's and mmseg's registries find them there
through their parent, so none of those libraries is imported), the engine parts (AGC
optimizer wrappers, hooks) into mmengine, the models into timm, and its checkpoint
reading as mmengine's loader of paths and URLs (published release files converted in
memory, everything else returned as stored: ``engine/checkpoint.py``). The mmpretrain
heads and the distillation classifier need mmpretrain: classification configs name
``repmobile_mm.integrations.mmpretrain`` in their ``custom_imports``.
"""
from . import engine  # noqa: F401  (registers the optimizer wrappers and hooks)
from .integrations import register_backbones
from .integrations import timm as _timm  # noqa: F401  (registers the models into timm)
from .models import *  # noqa: F401,F403
from .version import __version__  # noqa: F401

register_backbones()
engine.register_checkpoint_loaders()
