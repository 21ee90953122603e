# Demo: Mask R-CNN on small objects with a stride-4 level (P2) from the VAE
# encoder the backbone already runs (vae_taps=(1, ): the tiny VAE's
# down_blocks.1, 32 channels at stride 4), in front of the U-Net taps at
# strides 8-64: mmdet's usual P2-P6 layout (FPN on 5 inputs, RPN anchors at
# strides 4-64, RoI extractors at 4-32). Everything else as the stride-8
# baseline it inherits.   python tools/train.py <this file>
_base_ = ['./mask-rcnn_vpd_tiny-fpn_demo-coco-small.py']

num_classes = 3
strides = [4, 8, 16, 32]
model = dict(
    backbone=dict(vae_taps=(1, )),
    neck=dict(in_channels=[32, 32, 64 + num_classes, 64 + num_classes, 64]),
    rpn_head=dict(anchor_generator=dict(strides=strides + [64])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=strides),
        mask_roi_extractor=dict(featmap_strides=strides)))
