_base_ = [
    '../../../configs/_base_/models/repmobile-s_in1k.py',
    '../_base_/imagenet_4xb256-300e.py',
]
