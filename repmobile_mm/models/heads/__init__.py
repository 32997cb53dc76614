from .distillation import BNLinearClassifier, DistillationClassifier
from .repmobile_head import RepMobileClassifier, RepMobileNeck, build_mlp, neck_channels

__all__ = ['BNLinearClassifier', 'DistillationClassifier', 'RepMobileClassifier',
           'RepMobileNeck', 'build_mlp', 'neck_channels']
