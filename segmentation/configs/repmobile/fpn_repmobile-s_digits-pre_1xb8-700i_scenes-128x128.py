# Semantic FPN RepMobile-S on generated scenes with its backbone from the RepMobile-S digits
# classifier (classification/configs/repmobile/repmobile-s_1xb64_digits.py, at the
# path tools/train.py writes it to): the from-scratch scenes run
# (./fpn_repmobile-s_1xb8-1000i_scenes-128x128.py) in 700 iterations instead of 1000, as the
# ADE20K configs start from ImageNet weights. make demo trains the three in a chain: digits,
# these scenes, then Mask R-CNN on shapes from this run's backbone. Another checkpoint:
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
_base_ = './fpn_repmobile-s_1xb8-1000i_scenes-128x128.py'

model = dict(
    backbone=dict(init_cfg=dict(
        _delete_=True, type='Pretrained', prefix='backbone.',
        checkpoint='work_dirs/repmobile-s_1xb64_digits/epoch_12.pth')))

max_iters = 700
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=0.9, eta_min=1e-6, by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=350))  # a killed run resumes (--resume)
