# RepMobile-L ImageNet-1K classifier: the RepMobile-S model base with the L widths.
_base_ = './repmobile-s_in1k.py'
model = dict(backbone=dict(arch='L'), neck=dict(in_channels=768))
