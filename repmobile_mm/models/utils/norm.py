"""BatchNorm construction from an OpenMMLab-style ``norm_cfg`` without needing mmcv."""
from torch import nn

NORM_LAYERS = {'BN': nn.BatchNorm2d, 'BN2d': nn.BatchNorm2d, 'SyncBN': nn.SyncBatchNorm}


def build_norm2d(cfg: dict, num_features: int) -> nn.Module:
    """Build the 2-D norm layer that ``cfg`` names (``requires_grad`` as in mmcv)."""
    cfg = dict(cfg)
    layer_type = cfg.pop('type', None)
    if layer_type not in NORM_LAYERS:
        raise ValueError(f'norm_cfg type must be one of {sorted(NORM_LAYERS)} (the blocks '
                         f'fold BatchNorm into convolutions); got {layer_type!r}')
    requires_grad = cfg.pop('requires_grad', True)
    layer = NORM_LAYERS[layer_type](num_features, **cfg)
    for param in layer.parameters():
        param.requires_grad = requires_grad
    return layer
