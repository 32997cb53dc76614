"""Per-library layers: the registrations and the few classes a library needs.

The backbones go into mmengine's root ``MODELS``: every downstream registry
(mmpretrain's, mmdet's, mmseg's) searches its parent when a name is not its own, so
one registration serves all three without importing any of them. Only
``integrations.mmpretrain`` (heads subclassing ``ClsHead``, the distillation
classifier) imports its library, and only the configs that use it import it.
"""
from mmengine.registry import MODELS

from ..models import RepMobile, RepMobileNeck, RepNeXt, RepViT


def register_backbones() -> None:
    for module in (RepMobile, RepViT, RepNeXt, RepMobileNeck):
        MODELS.register_module(module=module)
