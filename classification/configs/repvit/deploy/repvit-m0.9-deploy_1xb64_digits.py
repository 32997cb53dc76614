# Fused form of ../repvit-m0.9_1xb64_digits.py (for checkpoints from tools/reparameterize_model.py).
_base_ = '../repvit-m0.9_1xb64_digits.py'
model = dict(backbone=dict(deploy=True), head=dict(deploy=True))
