# VPD semantic segmentation on Pascal VOC 2012 + SBD aug (21 classes incl.
# background), VPD's ADE20K recipe on mmseg's 40k VOC schedule length
# (VPD published no VOC figure).
_base_ = [
    'mmseg::_base_/datasets/pascal_voc12_aug.py',
    '../_base_/models/vpd_sd15-fpn.py'
]
num_classes = 21
model = dict(
    backbone=dict(class_embeddings=dict(class_names='voc')),
    neck=dict(in_channels=[320, 640 + num_classes, 1280 + num_classes, 1280]),
    decode_head=dict(num_classes=num_classes))
train_dataloader = dict(batch_size=2)
max_iters = 40000
# mmcv 1.x (VPD): lr = poly(iter / max_iters) x linear warm-up factor
# (1e-6 -> 1 over 1500 iterations). mmengine chains overlapping schedulers
# multiplicatively, so both run from iteration 0; its schedulers reach their
# end value at `end - 1`, hence the +1 (same lr as mmcv 1.x at every
# iteration: tests/test_configs/test_recipes.py).
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters + 1)
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
