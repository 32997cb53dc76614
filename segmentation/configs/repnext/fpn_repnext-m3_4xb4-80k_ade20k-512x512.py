# Semantic FPN on ADE20K (150 classes), RepNeXt-M3 backbone: the published recipe
# (shared/specs/repnext.md): the four stage outputs, AdamW lr 1e-4 weight decay 0.05,
# poly schedule (power 0.9, down to 1e-6) without warm-up or clipping, 80k iterations
# (the published files are named 40k), 4 GPUs x 4 images as the published logs ran,
# evaluation every 8k, test images resized so both sides are multiples of 32, the
# backbone's SyncBN training. Built on the RepViT ADE20K config, which shares the rest.
# The backbone starts from an ImageNet checkpoint (a published release file as it
# is, by path or URL: docs/model_zoo.md):
# --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL.
_base_ = '../repvit/fpn_repvit-m1.1_8xb4-40k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RepNeXt',
        arch='m3',
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/repnext-m3_in1k.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512]))

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
param_scheduler = [
    dict(type='PolyLR', power=0.9, eta_min=1e-6, begin=0, end=80000, by_epoch=False)
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
