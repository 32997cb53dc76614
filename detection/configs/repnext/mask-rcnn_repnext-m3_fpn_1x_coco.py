# Mask R-CNN + FPN, 1x schedule on COCO, RepNeXt-M3 backbone: the published recipe
# (shared/specs/repnext.md), which is RepViT's (AdamW lr 2e-4, weight decay 0.05, no
# gradient clipping, 12 epochs with steps at 8 and 11 after 500 warm-up iterations from
# 1e-6 of the lr, 8 GPUs x 2 images) with the four stage outputs and, unlike RepViT's,
# BatchNorms that keep training (SyncBN): the published train() override matches only
# plain BatchNorm2d, so after SyncBN conversion it leaves them training.
# The backbone starts from an ImageNet checkpoint (a published release file as it
# is, by path or URL: docs/model_zoo.md):
# --cfg-options model.backbone.init_cfg.checkpoint=PATH_OR_URL
_base_ = '../repvit/mask-rcnn_repvit-m1.1_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='RepNeXt',
        arch='m3',
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/repnext-m3_in1k.pth',
                      prefix='backbone.')),
    neck=dict(in_channels=[64, 128, 256, 512]))
