# Semantic FPN on ADE20K with RepViT-M2.3; recipe as in the M1.1 config, from the
# 450-epoch ImageNet checkpoint as for detection.
_base_ = './fpn_repvit-m1.1_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(arch='m2_3',
                  init_cfg=dict(checkpoint='checkpoints/repvit-m2.3-450e_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
