# Demo: object detection with a tiny random-init SD-shaped U-Net on the
# generated COCO-format demo scenes (3 classes), mmdet's Faster R-CNN with
# FPN on the VPD taps + class cross-attention maps. The model, data and
# schedule are the Mask R-CNN demo's, without the mask branch and masks.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = ['./mask-rcnn_vpd_tiny-fpn_demo-coco.py']

model = dict(
    type='FasterRCNN',
    roi_head=dict(mask_roi_extractor=None, mask_head=None))
# the Mask R-CNN demo's pipelines, loading boxes only
train_pipeline = [{k: v for k, v in t.items() if k != 'with_mask'}
                  for t in _base_.train_pipeline]
test_pipeline = [{k: v for k, v in t.items() if k != 'with_mask'}
                 for t in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(metric='bbox')
test_evaluator = val_evaluator
