# Fused form of ../mask-rcnn_repmobile-s_fpn_scenes-pre_1xb8-450i_shapes.py, for checkpoints
# written by tools/reparameterize_model.py (the scenes initialisation does not apply).
_base_ = '../mask-rcnn_repmobile-s_fpn_scenes-pre_1xb8-450i_shapes.py'
model = dict(backbone=dict(deploy=True, init_cfg=None))
