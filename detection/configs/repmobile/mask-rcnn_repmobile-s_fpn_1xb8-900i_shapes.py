# Mask R-CNN RepMobile-S on generated shapes (tools/dataset_converters/make_shapes.py):
# a COCO-format stand-in that trains on 2 CPU cores in minutes. Heads are slimmed
# (FPN/RPN 64 channels, 500 boxes a level into the RPN's NMS, 300 proposals, 64
# sampled RoIs, 2 mask convs of 64) and the backbone starts from scratch; everything
# else is the RepMobile-S COCO config. Weights are channels-last (faster on CPU);
# RoIAlign runs as matrix products (SeparableRoIExtractor: mmcv's values on either
# layout, its CPU backward several times faster than mmcv's or torchvision's).
_base_ = './mask-rcnn_repmobile-s_fpn_1x_coco.py'
custom_imports = dict(imports=['repmobile_mm', 'repmobile_mm.integrations.mmdet'],
                      allow_failed_imports=False)

classes = ('rectangle', 'ellipse', 'triangle')
model = dict(
    backbone=dict(init_cfg=None),
    neck=dict(out_channels=64),
    rpn_head=dict(in_channels=64, feat_channels=64),
    roi_head=dict(
        bbox_roi_extractor=dict(type='SeparableRoIExtractor', out_channels=64),
        bbox_head=dict(in_channels=64, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(type='SeparableRoIExtractor', out_channels=64),
        mask_head=dict(num_convs=2, in_channels=64, conv_out_channels=64,
                       num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300)))

data_root = 'data/shapes/'
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/')))
val_dataloader = dict(
    batch_size=4,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_iters = 900
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=2e-3, fused=True))  # one AdamW kernel: faster on CPU
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters - 100, eta_min=1e-5, by_epoch=False,
         begin=100, end=max_iters),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    # every 300 iterations, the last two kept: a killed run resumes (--resume)
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
custom_hooks = [dict(type='ChannelsLastHook')]
randomness = dict(seed=0)
