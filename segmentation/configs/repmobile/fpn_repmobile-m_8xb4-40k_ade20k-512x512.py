# Semantic FPN on ADE20K with RepMobile-M; recipe as in the RepMobile-S config.
_base_ = './fpn_repmobile-s_8xb4-40k_ade20k-512x512.py'
model = dict(
    backbone=dict(
        arch='M',
        init_cfg=dict(checkpoint='checkpoints/repmobile-m_in1k.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
