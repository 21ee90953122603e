# VPD (Zhao et al., ICCV 2023) semantic segmentation on ADE20K (150 classes).
# VPD reports 53.7 mIoU (54.6 multi-scale + flip) with this recipe.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py', '../_base_/models/vpd_sd15-fpn.py'
]
num_classes = 150
model = dict(
    backbone=dict(class_embeddings=dict(class_names='ade20k')),
    neck=dict(in_channels=[320, 640 + num_classes, 1280 + num_classes, 1280]),
    decode_head=dict(num_classes=num_classes))
train_dataloader = dict(batch_size=2)
