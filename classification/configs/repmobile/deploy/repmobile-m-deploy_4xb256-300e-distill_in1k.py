# Fused form of ../repmobile-m_4xb256-300e-distill_in1k.py: both classifier MLPs are
# merged into one; no teacher is needed at inference.
_base_ = '../repmobile-m_4xb256-300e-distill_in1k.py'
model = dict(
    teacher=None,
    backbone=dict(deploy=True),
    neck=dict(deploy=True),
    head=dict(deploy=True))
