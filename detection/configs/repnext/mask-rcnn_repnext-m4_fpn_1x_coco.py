# Mask R-CNN + FPN 1x on COCO with RepNeXt-M4; recipe as in the M3 config.
_base_ = './mask-rcnn_repnext-m3_fpn_1x_coco.py'
model = dict(
    backbone=dict(arch='m4', init_cfg=dict(checkpoint='checkpoints/repnext-m4_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
