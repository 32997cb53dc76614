# Fused form of ../repnext-m3_8xb256-300e-distill_in1k.py: both classifier branches are
# merged into one Linear; no teacher is needed at inference.
_base_ = '../repnext-m3_8xb256-300e-distill_in1k.py'
model = dict(
    teacher=None,
    backbone=dict(deploy=True),
    head=dict(deploy=True))
