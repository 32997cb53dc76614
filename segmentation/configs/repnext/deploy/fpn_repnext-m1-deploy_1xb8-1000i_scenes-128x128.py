# Fused form of ../fpn_repnext-m1_1xb8-1000i_scenes-128x128.py (for checkpoints from
# tools/reparameterize_model.py).
_base_ = '../fpn_repnext-m1_1xb8-1000i_scenes-128x128.py'
model = dict(backbone=dict(deploy=True))
