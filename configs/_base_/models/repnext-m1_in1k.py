# RepNeXt-M1 ImageNet-1K classifier: backbone, global average pooling, the published
# NormLinear classifier (head.norm, head.linear), label smoothing 0.1. The other variants
# change backbone.arch and head.in_channels (the last stage width).
custom_imports = dict(imports=['repmobile_mm.integrations.mmpretrain'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(type='RepNeXt', arch='m1', out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='NormLinearClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, 5)))
