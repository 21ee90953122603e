# Demo: object detection with a tiny random-init SD-shaped U-Net on the
# generated COCO-format demo scenes (3 classes), mmdet's Faster R-CNN with
# FPN on the VPD taps + class cross-attention maps. The data, pipelines and
# schedule are the Mask R-CNN demo's, without masks.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = ['./mask-rcnn_vpd_tiny-fpn_demo-coco.py']

model = dict(
    type='FasterRCNN',
    roi_head=dict(mask_roi_extractor=None, mask_head=None))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
