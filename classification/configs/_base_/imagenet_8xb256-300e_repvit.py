# The published RepViT ImageNet-1K recipe (shared/specs/repvit.md, main.py defaults of
# both releases). Data, augmentation, repeated augmentation, warm-up and cosine come
# from the RepMobile recipe, which shares them; this file states what differs.
_base_ = './imagenet_4xb256-300e.py'

# AdamW at 1e-3 per 512 images: 4e-3 for 8 GPUs x 256 (auto_scale_lr rescales it for
# other totals), weight decay 0.025 (not on norms and biases), adaptive gradient
# clipping 0.02.
optim_wrapper = dict(
    agc=dict(clip_factor=0.02),
    optimizer=dict(lr=4e-3, weight_decay=0.025))
auto_scale_lr = dict(base_batch_size=2048)
# warm-up from 1e-6 (a factor of 1e-6 / 4e-3) over 5 epochs, then the base's cosine to 1e-5
param_scheduler = [
    dict(type='LinearLR', start_factor=2.5e-4, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=295, eta_min=1e-5, by_epoch=True, begin=5, end=300,
         convert_to_iter_based=True),
]
# Model EMA, decay 0.99996, kept beside the model; as published, evaluation, the
# best-checkpoint choice and state_dict use the raw model (ema_state_dict holds the EMA).
custom_hooks = [dict(type='RawEvalEMAHook', momentum=4e-5, priority='ABOVE_NORMAL')]
