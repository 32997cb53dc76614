# Semantic FPN on ADE20K with RepViT-M1.5; recipe as in the M1.1 config.
_base_ = './fpn_repvit-m1.1_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(arch='m1_5', init_cfg=dict(checkpoint='checkpoints/repvit-m1.5_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
