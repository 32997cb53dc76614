# scikit-learn's handwritten digits (tools/dataset_converters/export_digits.py): 1,437
# training and 360 held-out 32x32 images, a real-data run that trains on 2 CPU cores in
# minutes. Data, schedule and hooks shared by every family's digits config, which adds
# the model (with 10 classes).
_base_ = 'mmpretrain::_base_/default_runtime.py'

data_preprocessor = dict(
    num_classes=10, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

data_root = 'data/digits'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=2),  # +-2 pixel shifts
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,  # one worker for the run, not a new one each epoch
    drop_last=True,  # no tiny last batch for the BatchNorms (RepMobile's gate BN
                     # sees one value per channel per image)
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=120,
    num_workers=1,
    dataset=dict(type='CustomDataset', data_root=data_root, data_prefix='val',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# 8 epochs: 99.17% top-1 for RepViT-M0.9, 98.61% for RepNeXt-M1 (docs/benchmarks.md)
max_epochs = 8
# no decay on norms and biases, in two parameter groups (not one a parameter), and
# AdamW's fused kernel: RepNeXt-M1's optimizer step on 2 CPU cores took 60-73 ms of a
# training step, now 8-12 ms
optim_wrapper = dict(
    constructor='MergedGroupsOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05, fused=True),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=1e-5, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    # every epoch, the last two kept: a killed run resumes (--resume) losing one epoch
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
# channels-last weights: the same values, and on CPU half the time for RepNeXt's
# depthwise convolutions (repmobile_mm.engine.ChannelsLastHook)
custom_hooks = [dict(type='ChannelsLastHook')]
randomness = dict(seed=0)
