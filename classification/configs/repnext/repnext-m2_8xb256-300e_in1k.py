# RepNeXt-M2; recipe as in the RepNeXt-M1 config.
_base_ = './repnext-m1_8xb256-300e_in1k.py'
model = dict(backbone=dict(arch='m2'), head=dict(in_channels=448))
