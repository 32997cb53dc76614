# Semantic FPN RepNeXt-M1 on generated scenes (tools/dataset_converters/make_scenes.py):
# the RepMobile scenes run (same data, half-width FPN and head, schedule) with a RepNeXt
# backbone from scratch.
_base_ = '../repmobile/fpn_repmobile-s_1xb8-1000i_scenes-128x128.py'
model = dict(
    backbone=dict(_delete_=True, type='RepNeXt', arch='m1', out_indices=(0, 1, 2, 3)),
    neck=dict(in_channels=[48, 96, 192, 384]))
