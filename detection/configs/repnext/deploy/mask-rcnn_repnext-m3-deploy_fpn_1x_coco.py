# Fused form of ../mask-rcnn_repnext-m3_fpn_1x_coco.py, for checkpoints written by
# tools/reparameterize_model.py (the ImageNet initialisation does not apply).
_base_ = '../mask-rcnn_repnext-m3_fpn_1x_coco.py'
model = dict(backbone=dict(deploy=True, init_cfg=None))
