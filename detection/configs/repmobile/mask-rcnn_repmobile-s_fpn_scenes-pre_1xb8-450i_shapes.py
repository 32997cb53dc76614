# Mask R-CNN RepMobile-S on generated shapes with its backbone from the Semantic FPN scenes
# run (segmentation/configs/repmobile/fpn_repmobile-s_digits-pre_1xb8-700i_scenes-128x128.py,
# at the path tools/train.py writes it to): the from-scratch shapes run
# (./mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py) in 450 iterations instead of 900, as the
# COCO configs start from ImageNet weights. The scenes are drawn from the same kind of shapes
# (the digits classifier's backbone alone gave box AP 0.20 in 450 iterations). The mask
# head's convolutions are 32 channels wide instead of 64, enough for three kinds of shape:
# training takes 13% less (the mask head was the largest part of a step) for box and mask
# AP as good over two seeds (docs/benchmarks.md).
# make demo trains the chain: digits, scenes, these shapes. Another checkpoint:
# --cfg-options model.backbone.init_cfg.checkpoint=PATH.
_base_ = './mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py'

model = dict(
    backbone=dict(init_cfg=dict(
        _delete_=True, type='Pretrained', prefix='backbone.',
        checkpoint='work_dirs/fpn_repmobile-s_digits-pre_1xb8-700i_scenes-128x128/iter_700.pth')),
    roi_head=dict(mask_head=dict(conv_out_channels=32)))

max_iters = 450
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', T_max=max_iters - 50, eta_min=1e-5, by_epoch=False,
         begin=50, end=max_iters),
]
default_hooks = dict(checkpoint=dict(interval=150))  # a killed run resumes (--resume)
