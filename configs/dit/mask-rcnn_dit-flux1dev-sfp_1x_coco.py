# The SD3.5-medium config (Mask R-CNN, COCO)
# on FLUX.1-dev: blocks 18, 32, 45, 56 of its 19 joint + 38 single blocks,
# width 3072. Untrained here.
_base_ = ['./mask-rcnn_dit-sd35m-sfp_1x_coco.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.flux1dev_backbone),
    neck=dict(in_channels=[_base_.flux1dev_width] * 4))
