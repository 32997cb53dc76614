from .repmobile_head import RepMobileClassifier, RepMobileNeck, build_mlp, neck_channels

__all__ = ['RepMobileClassifier', 'RepMobileNeck', 'build_mlp', 'neck_channels']
