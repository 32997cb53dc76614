# Fused form of ../repnext-m1_8xb256-300e_in1k.py: loads checkpoints written by
# tools/reparameterize_model.py with strict=True.
_base_ = '../repnext-m1_8xb256-300e_in1k.py'
model = dict(
    backbone=dict(deploy=True),
    head=dict(deploy=True))
