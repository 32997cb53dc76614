# Mask R-CNN + FPN, 1x schedule on COCO, RepMobile-S backbone: the published recipe
# (AdamW lr 2e-4, weight decay 0.05, SyncBN in FPN and RoI heads, 12 epochs with
# steps at 8 and 11, 500 warm-up iterations). The backbone starts from an ImageNet
# classification checkpoint (tools/train.py output, or a published release file as it
# is, by path or URL: docs/model_zoo.md); point to yours with
# --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL.
# SyncBN becomes plain BN when the run is not distributed (one GPU, CPU).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['repmobile_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='RepMobile',
        arch='S',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/repmobile-s_in1k.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512], norm_cfg=norm_cfg),
    roi_head=dict(bbox_head=dict(norm_cfg=norm_cfg), mask_head=dict(norm_cfg=norm_cfg)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=0.05))
