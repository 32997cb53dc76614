# Fused form of ../fpn_repmobile-s_digits-pre_1xb8-700i_scenes-128x128.py, for checkpoints
# written by tools/reparameterize_model.py (the digits initialisation does not apply).
_base_ = '../fpn_repmobile-s_digits-pre_1xb8-700i_scenes-128x128.py'
model = dict(backbone=dict(deploy=True, init_cfg=None))
