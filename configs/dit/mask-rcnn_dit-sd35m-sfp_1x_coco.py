# Mask R-CNN on SD3.5-medium DiT features (DiTBackbone, four blocks, null
# prompt) through ViTDet's simple feature pyramid (strides 4-32, + a max-pooled
# 64 for the RPN), COCO 1x with the VPD detection optimiser. Untrained here.
_base_ = [
    '../vpd/mask-rcnn_vpd_sd15-fpn_1x_coco.py',
    '../_base_/models/dit_released.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.sd35m_backbone),
    neck=dict(
        _delete_=True,
        type='mmdiff.SimpleFeaturePyramid',
        in_channels=[_base_.sd35m_width] * 4,
        out_channels=256,
        num_outs=5),
    rpn_head=dict(anchor_generator=dict(strides=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=[4, 8, 16, 32]),
        mask_roi_extractor=dict(featmap_strides=[4, 8, 16, 32])))
