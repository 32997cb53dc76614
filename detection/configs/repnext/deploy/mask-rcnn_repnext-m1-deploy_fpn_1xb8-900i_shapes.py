# Fused form of ../mask-rcnn_repnext-m1_fpn_1xb8-900i_shapes.py (for checkpoints from
# tools/reparameterize_model.py).
_base_ = '../mask-rcnn_repnext-m1_fpn_1xb8-900i_shapes.py'
model = dict(backbone=dict(deploy=True))
