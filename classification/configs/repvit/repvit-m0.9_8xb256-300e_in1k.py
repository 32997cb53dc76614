_base_ = [
    '../../../configs/_base_/models/repvit-m0.9_in1k.py',
    '../_base_/imagenet_8xb256-300e_repvit.py',
]

# Mixup 0.8 and CutMix 1.0 (every RepViT variant); accuracy during training is
# meaningless with them.
model = dict(
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
    head=dict(cal_acc=False))
