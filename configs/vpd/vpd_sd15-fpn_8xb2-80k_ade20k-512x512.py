# VPD (Zhao et al., ICCV 2023) semantic segmentation on ADE20K (150 classes).
# VPD reports 53.7 mIoU (54.6 multi-scale + flip) with this recipe.
_base_ = [
    '../_base_/models/vpd_sd15-fpn.py', '../_base_/datasets/ade20k.py',
    '../_base_/schedules/vpd_80k.py', '../_base_/runtime/default_runtime.py'
]
num_classes = _base_.num_classes
model = dict(
    backbone=dict(class_embeddings=dict(class_names='ade20k')),
    # SD1.5 taps + the K = num_classes class attention maps at 1/16, 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    decode_head=dict(num_classes=num_classes))
