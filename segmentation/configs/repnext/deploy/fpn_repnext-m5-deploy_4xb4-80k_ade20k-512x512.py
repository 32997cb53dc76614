# Fused form of ../fpn_repnext-m5_4xb4-80k_ade20k-512x512.py, for checkpoints written
# by tools/reparameterize_model.py (the ImageNet initialisation does not apply).
_base_ = '../fpn_repnext-m5_4xb4-80k_ade20k-512x512.py'
model = dict(backbone=dict(deploy=True, init_cfg=None))
