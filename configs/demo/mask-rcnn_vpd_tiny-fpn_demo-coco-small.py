# Demo: Mask R-CNN on SMALL objects, the stride-8 baseline. The Mask R-CNN
# demo (tiny U-Net, VPD taps at strides 8-64) on the small-object variant of
# the demo scenes (mmdiff.DemoCocoSmallDataset: objects at 0.4x their size,
# up to 12 a scene; all COCO-small). Compare with
# mask-rcnn_vpd_tiny-p2-fpn_demo-coco-small.py (+ a stride-4 level from the
# VAE encoder) and ..._demo-coco-small-2x.py (input upsampled 2x); figures in
# docs/small_objects.md.   python tools/train.py <this file>
_base_ = ['./mask-rcnn_vpd_tiny-fpn_demo-coco.py']

data_root = 'data/demo/coco_small/'
small_data = dict(
    type='DemoCocoSmallDataset', data_root=data_root, num_val=32)
train_dataloader = dict(dataset=small_data)
val_dataloader = dict(dataset=small_data)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
