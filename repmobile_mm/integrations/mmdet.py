"""mmdet layer: ``SeparableRoIExtractor``, mmdet's ``SingleRoIExtractor`` with its
``RoIAlign`` computed by :class:`~repmobile_mm.models.utils.roi_align.SeparableRoIAlign`
(the same values, several times faster to train on CPU, any memory layout).

Detection configs that use it import this module through ``custom_imports``."""
from typing import List

from mmdet.models.roi_heads.roi_extractors import SingleRoIExtractor
from mmdet.registry import MODELS
from torch import nn

from ..errors import ConfigError
from ..models.utils.roi_align import SeparableRoIAlign


@MODELS.register_module()
class SeparableRoIExtractor(SingleRoIExtractor):
    """Takes the ``roi_layer`` of a Mask R-CNN config as it is (``type='RoIAlign'``,
    mmcv's arguments) and computes it with :class:`SeparableRoIAlign`."""

    def build_roi_layers(self, layer_cfg: dict, featmap_strides: List[int]) -> nn.ModuleList:
        cfg = dict(layer_cfg)
        layer_type = cfg.pop('type')
        if layer_type != 'RoIAlign':
            raise ConfigError(f"SeparableRoIExtractor computes RoIAlign; roi_layer type "
                              f"'{layer_type}' needs mmdet's SingleRoIExtractor")
        try:
            return nn.ModuleList(
                [SeparableRoIAlign(spatial_scale=1 / s, **cfg) for s in featmap_strides])
        except (TypeError, ValueError) as error:
            raise ConfigError(f'SeparableRoIExtractor roi_layer: {error}') from None
