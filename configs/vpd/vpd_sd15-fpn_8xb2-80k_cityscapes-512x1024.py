# VPD semantic segmentation on Cityscapes (19 classes), VPD's ADE20K recipe
# at 512x1024 crops (VPD published no Cityscapes figure).
_base_ = [
    '../_base_/models/vpd_sd15-fpn.py', '../_base_/datasets/cityscapes.py',
    '../_base_/schedules/vpd_80k.py', '../_base_/runtime/default_runtime.py'
]
num_classes = _base_.num_classes
model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(class_embeddings=dict(class_names='cityscapes')),
    # SD1.5 taps + the K = num_classes class attention maps at 1/16, 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    decode_head=dict(num_classes=num_classes))
