"""Per-library layers: registrations and the few classes a library needs (heads, wrappers)."""
import importlib.util


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def register_all():
    """Register into mmpretrain, mmdet, mmseg and timm, each only if installed."""
    if _installed('mmpretrain'):
        from . import mmpretrain  # noqa: F401
    if _installed('mmdet'):
        from . import mmdet  # noqa: F401
    if _installed('mmseg'):
        from . import mmseg  # noqa: F401
    if _installed('timm'):
        from . import timm  # noqa: F401
