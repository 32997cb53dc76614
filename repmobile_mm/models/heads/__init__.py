from .distillation import BNLinearClassifier, DistillationClassifier, NormLinearClassifier
from .repmobile_head import RepMobileClassifier, RepMobileNeck, build_mlp, neck_channels

__all__ = ['BNLinearClassifier', 'DistillationClassifier', 'NormLinearClassifier',
           'RepMobileClassifier', 'RepMobileNeck', 'build_mlp', 'neck_channels']
