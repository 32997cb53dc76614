_base_ = [
    '../../../configs/_base_/models/repmobile-l_in1k.py',
    '../_base_/imagenet_4xb256-300e.py',
]

# Mixup 0.8 and CutMix 1.0 (L only); accuracy during training is meaningless with them.
model = dict(
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
    head=dict(cal_acc=False))
