# Detection + instance segmentation on YOUR COCO-format data set (any tool
# that exports COCO json: CVAT, Label Studio, labelme2coco ...), Mask R-CNN
# with FPN on VPD features (SD1.5 U-Net taps + class-prompt attention maps).
# Copy this file, set classes/data_root, then
#   python tools/train.py my_coco_config.py
#   data/my_coco/annotations/{train,val}.json   COCO instances json
#   data/my_coco/images/{train,val}/            the images the json names
# For boxes only: inherit 'mmdiff::vpd/faster-rcnn_vpd_sd15-fpn_1x_coco.py'
# and drop mask_head below. SD weights: README "Getting the weights".
_base_ = ['mmdiff::vpd/mask-rcnn_vpd_sd15-fpn_1x_coco.py']

classes = ('cat', 'dog')  # the json's category names, in id order
palette = [(220, 20, 60), (0, 170, 0)]  # (r, g, b) tuples
num_classes = len(classes)
data_root = 'data/my_coco/'

model = dict(
    backbone=dict(class_embeddings=dict(class_names=list(classes))),
    # SD1.5 taps + the K = num_classes attention maps at 1/16 and 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))

metainfo = dict(classes=classes, palette=palette)
train_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo,
    ann_file='annotations/train.json', data_prefix=dict(img='images/train/')))
val_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo,
    ann_file='annotations/val.json', data_prefix=dict(img='images/val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
