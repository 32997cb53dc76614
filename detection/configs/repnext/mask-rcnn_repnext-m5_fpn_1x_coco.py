# Mask R-CNN + FPN 1x on COCO with RepNeXt-M5; recipe as in the M3 config.
_base_ = './mask-rcnn_repnext-m3_fpn_1x_coco.py'
model = dict(
    backbone=dict(arch='m5', init_cfg=dict(checkpoint='checkpoints/repnext-m5_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
