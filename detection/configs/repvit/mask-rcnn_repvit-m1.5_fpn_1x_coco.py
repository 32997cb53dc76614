# Mask R-CNN + FPN 1x on COCO with RepViT-M1.5; recipe as in the M1.1 config, taps as
# published (stage ends would be (5, 11, 37, 42)).
_base_ = './mask-rcnn_repvit-m1.1_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='m1_5',
        out_feature_indices=(4, 10, 36, 42),
        init_cfg=dict(checkpoint='checkpoints/repvit-m1.5_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
