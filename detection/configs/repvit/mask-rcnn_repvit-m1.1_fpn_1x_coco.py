# Mask R-CNN + FPN, 1x schedule on COCO, RepViT-M1.1 backbone: the published recipe
# (shared/specs/repvit.md). Backbone taps as published: out_feature_indices counts
# entries of `features` (0 = patch embedding), so (2, 6, 20, 24) is the second-to-last
# block of stages 0-2 and the last block of stage 3 (the stage ends would be
# (3, 7, 21, 24)). Every backbone BatchNorm stays in eval mode (norm_eval, the published
# train() override), the backbone uses SyncBN, nothing is frozen. AdamW lr 2e-4,
# weight decay 0.05, no gradient clipping, 12 epochs with steps at 8 and 11 after 500
# linear warm-up iterations from 1e-6 of the lr, 8 GPUs x 2 images.
# The backbone starts from an ImageNet checkpoint (tools/train.py output, or a published
# release file as it is, by path or URL: docs/model_zoo.md):
# --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['repmobile_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='RepViT',
        arch='m1_1',
        out_feature_indices=(2, 6, 20, 24),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=True,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/repvit-m1.1_in1k.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
