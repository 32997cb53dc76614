# RepMobile-S ImageNet-1K classifier: backbone, published head (1x1 conv + BN + ReLU,
# pooling, MLP), label smoothing 0.1. Shared by the classification configs.
custom_imports = dict(imports=['repmobile_mm.integrations.mmpretrain'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepMobile', arch='S', out_indices=(3, )),
    neck=dict(type='RepMobileNeck', in_channels=512),
    head=dict(
        type='RepMobileClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
