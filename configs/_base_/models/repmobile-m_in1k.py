# RepMobile-M ImageNet-1K classifier: the RepMobile-S model base with the M widths.
_base_ = './repmobile-s_in1k.py'
model = dict(backbone=dict(arch='M'), neck=dict(in_channels=640))
