# RepViT-M0.9 ImageNet-1K classifier: backbone, global average pooling, the published
# BatchNorm1d + Linear classifier, label smoothing 0.1. The other RepViT variants
# change backbone.arch and head.in_channels (the last stage width).
custom_imports = dict(imports=['repmobile_mm.integrations.mmpretrain'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepViT', arch='m0_9', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='BNLinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
