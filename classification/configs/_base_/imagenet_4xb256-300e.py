# The published ImageNet-1K recipe (shared/specs/repmobile.md), built from
# mmpretrain's own parts; the per-variant configs add the model.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/default_runtime.py',
]

# Data: bicubic RandomResizedCrop, flip, RandAugment rand-m9-mstd0.5-inc1 (mmpretrain's
# 'timm_increasing' policies at magnitude 9, std 0.5) and random erasing 0.25 come from
# the base. The published arguments also name colour jitter 0.4, but timm switches
# colour jitter off whenever RandAugment is on, so the published models never used it.
# Repeated augmentation: 3 repeats (timm's --aug-repeats 3, as DeiT).
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    sampler=dict(type='RepeatAugSampler', num_repeats=3, shuffle=True))
# Evaluation batch is 1.5x the training batch.
val_dataloader = dict(batch_size=384, num_workers=8)
test_dataloader = val_dataloader

# AdamW, lr 1e-3 for a total batch of 1024 (auto_scale_lr scales it), weight decay
# 0.05 except on norms and biases (timm's filter_bias_and_bn), adaptive gradient
# clipping 5.0 with timm's implementation.
optim_wrapper = dict(
    type='AGCOptimWrapper',
    agc=dict(clip_factor=5.0),
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))

# 5 linear warm-up epochs from 1e-6, then cosine to 1e-5, 300 epochs in all.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-5, by_epoch=True, begin=5, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3,
                                     save_best='auto'))
