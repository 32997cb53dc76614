# Fused form of ../repnext-m1_1xb64_digits.py (for checkpoints from tools/reparameterize_model.py).
_base_ = '../repnext-m1_1xb64_digits.py'
model = dict(backbone=dict(deploy=True), head=dict(deploy=True))
