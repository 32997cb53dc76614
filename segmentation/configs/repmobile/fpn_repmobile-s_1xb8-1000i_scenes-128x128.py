# Semantic FPN RepMobile-S on generated scenes (tools/dataset_converters/make_scenes.py),
# an ADE20K-layout stand-in (label 0 = "other", ignored) that trains on 2 CPU cores in
# minutes. Backbone from scratch, 128x128 crops, batch 8 (the ClaSiLU gate's BatchNorm
# sees one pooled value per image: smaller batches make it degenerate), FPN and head at
# half width (128 and 64 channels: at 256/128 they cost as much as the backbone on CPU,
# and halving them buys ~1.7x the iterations in the same time at the same mIoU); the
# rest is the RepMobile-S ADE20K config.
_base_ = './fpn_repmobile-s_8xb4-40k_ade20k-512x512.py'

classes = ('background', 'disc', 'square', 'triangle')
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=128),
    decode_head=dict(in_channels=[128] * 4, channels=64, num_classes=len(classes)))

data_root = 'data/scenes'
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes),
               reduce_zero_label=True, img_suffix='.jpg', seg_map_suffix='.png')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeToMultiple', size_divisor=32),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(_delete_=True, **dataset, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training')))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(_delete_=True, **dataset, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation')))
test_dataloader = val_dataloader

max_iters = 1000
optim_wrapper = dict(optimizer=dict(lr=4e-3, fused=True), clip_grad=None)  # fused: faster on CPU
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=0.9, eta_min=1e-6, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(interval=250, max_keep_ckpts=2))  # a killed run resumes (--resume)
custom_hooks = [dict(type='ChannelsLastHook')]  # same values, faster on CPU
randomness = dict(seed=0)
