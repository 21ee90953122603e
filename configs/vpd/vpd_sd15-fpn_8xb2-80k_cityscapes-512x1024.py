# VPD semantic segmentation on Cityscapes (19 classes), VPD's ADE20K recipe
# at 512x1024 crops (VPD published no Cityscapes figure).
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py', '../_base_/models/vpd_sd15-fpn.py'
]
num_classes = 19
crop_size = (512, 1024)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(class_embeddings=dict(class_names='cityscapes')),
    neck=dict(in_channels=[320, 640 + num_classes, 1280 + num_classes, 1280]),
    decode_head=dict(num_classes=num_classes))
train_dataloader = dict(batch_size=2)
