# Mask R-CNN RepViT-M0.9 on generated shapes (tools/dataset_converters/make_shapes.py):
# the RepMobile shapes run (same data, slim heads, schedule) with a RepViT backbone from
# scratch, taps at the stage ends, BatchNorms training (a from-scratch backbone needs it).
_base_ = '../repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py'
model = dict(
    backbone=dict(_delete_=True, type='RepViT', arch='m0_9', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[48, 96, 192, 384]))
