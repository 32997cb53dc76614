# Semantic FPN on ADE20K with RepNeXt-M5; recipe as in the M3 config.
_base_ = './fpn_repnext-m3_4xb4-80k_ade20k-512x512.py'
model = dict(
    backbone=dict(arch='m5', init_cfg=dict(checkpoint='checkpoints/repnext-m5_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
