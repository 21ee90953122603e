# Demo: the stride-8 small-object baseline on images upsampled 2x (256 px
# instead of 128), so that its finest level has stride 4 relative to the
# original image: the costly alternative to the stride-4 VAE level (about 4x
# the backbone's compute). Predictions are mapped back and evaluated on the
# original annotations.   python tools/train.py <this file>
_base_ = ['./mask-rcnn_vpd_tiny-fpn_demo-coco-small.py']

scale = (256, 256)
train_pipeline = [
    dict(t, scale=scale) if t['type'] == 'Resize' else t
    for t in _base_.train_pipeline
]
test_pipeline = [
    dict(t, scale=scale) if t['type'] == 'Resize' else t
    for t in _base_.test_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
