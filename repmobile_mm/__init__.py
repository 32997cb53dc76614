"""repmobile_mm: re-parameterizable mobile CNN backbones for OpenMMLab 2.0.

Importing the package registers the models into mmpretrain, mmdet, mmseg and timm,
each only if installed, and the engine parts (AGC optimizer wrappers, the EMA hook)
into mmengine; ``repmobile_mm.models`` needs only torch, mmengine and timm.
"""
import warnings

# mmengine 0.10.7 imports pkg_resources (hence setuptools < 81 in requirements/): the
# deprecation warning that import prints names nothing a user of this suite can change.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated as an API',
                        category=UserWarning)

from . import engine  # noqa: E402,F401  (registers the optimizer wrappers and hooks)
from .models import *  # noqa: E402,F401,F403
from .integrations import register_all  # noqa: E402

__version__ = '0.1.0'

register_all()
