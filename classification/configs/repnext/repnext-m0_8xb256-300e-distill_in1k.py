# Hard distillation (alpha 0.5) from a RegNetY-16GF teacher (timm's regnety_160), as
# published. Set the teacher weights: --cfg-options model.teacher_checkpoint=PATH
_base_ = './repnext-m0_8xb256-300e_in1k.py'
model = dict(
    type='DistillationImageClassifier',
    teacher=dict(type='TimmClassifier', model_name='regnety_160', num_classes=1000),
    teacher_checkpoint='checkpoints/regnety_160.pth',
    head=dict(distillation=True, distill_alpha=0.5))
