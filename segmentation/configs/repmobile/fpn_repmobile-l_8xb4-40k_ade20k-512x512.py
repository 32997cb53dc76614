# Semantic FPN on ADE20K with RepMobile-L; recipe as in the RepMobile-S config.
_base_ = './fpn_repmobile-s_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='L',
        init_cfg=dict(checkpoint='checkpoints/repmobile-l_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
