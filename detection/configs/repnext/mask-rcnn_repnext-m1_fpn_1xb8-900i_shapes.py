# Mask R-CNN RepNeXt-M1 on generated shapes (tools/dataset_converters/make_shapes.py):
# the RepMobile shapes run (same data, slim heads, schedule) with a RepNeXt backbone
# from scratch.
_base_ = '../repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py'
model = dict(
    backbone=dict(_delete_=True, type='RepNeXt', arch='m1', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[48, 96, 192, 384]))
