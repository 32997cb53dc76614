# Mask R-CNN + FPN 1x on COCO with RepViT-M2.3; recipe as in the M1.1 config, taps as
# published (stage ends would be (7, 15, 51, 54)); as published, the backbone starts
# from the 450-epoch ImageNet checkpoint.
_base_ = './mask-rcnn_repvit-m1.1_fpn_1x_coco.py'
model = dict(
    backbone=dict(
        arch='m2_3',
        out_feature_indices=(6, 14, 50, 54),
        init_cfg=dict(checkpoint='checkpoints/repvit-m2.3-450e_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
