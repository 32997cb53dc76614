# Mask R-CNN + FPN 1x on COCO with RepMobile-M; recipe as in the RepMobile-S config.
_base_ = './mask-rcnn_repmobile-s_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='M',
        init_cfg=dict(checkpoint='checkpoints/repmobile-m_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
