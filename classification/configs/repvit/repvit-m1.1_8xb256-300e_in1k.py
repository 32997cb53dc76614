# RepViT-M1.1 (later release); recipe as in the RepViT-M0.9 config.
_base_ = './repvit-m0.9_8xb256-300e_in1k.py'
model = dict(backbone=dict(arch='m1_1'), head=dict(in_channels=512))
