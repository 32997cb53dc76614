# RepNeXt's published ImageNet-1K recipe is RepViT's (shared/specs/repnext.md).
# Published checkpoints always carry the distillation head (head.head_dist): load them
# with the -distill configs.
_base_ = [
    '../../../configs/_base_/models/repnext-m1_in1k.py',
    '../_base_/imagenet_8xb256-300e_repvit.py',
]

# Mixup 0.8 and CutMix 1.0 (every variant); accuracy during training is meaningless
# with them.
model = dict(
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
    head=dict(cal_acc=False))
