# Mask R-CNN + FPN 1x on COCO with RepMobile-L; recipe as in the RepMobile-S config.
_base_ = './mask-rcnn_repmobile-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='L',
        init_cfg=dict(checkpoint='checkpoints/repmobile-l_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
