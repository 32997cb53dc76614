# Fused form of ../repmobile-s_1xb64_digits.py (for checkpoints from tools/reparameterize_model.py).
_base_ = '../repmobile-s_1xb64_digits.py'
model = dict(backbone=dict(deploy=True), neck=dict(deploy=True), head=dict(deploy=True))
