# Semantic FPN on ADE20K (150 classes), RepViT-M1.1 backbone: the published recipe
# (shared/specs/repvit.md): taps at the stage ends, AdamW lr 2e-4 weight decay 1e-4, poly
# schedule (power 0.9, down to 1e-6) without warm-up or gradient clipping, 40k
# iterations, 8 GPUs x 4 images, evaluation every 4k, test images resized (not padded)
# so both sides are multiples of 32. The published recipe names no BatchNorm override
# here: the backbone's SyncBN trains. The backbone starts from an ImageNet checkpoint:
# --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL.
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['repmobile_mm'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='RepViT',
        arch='m1_1',
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/repvit-m1.1_in1k.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512]),
    decode_head=dict(num_classes=150))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, weight_decay=1e-4))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=1e-6, begin=0, end=40000, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=40000, val_interval=4000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=4000))
