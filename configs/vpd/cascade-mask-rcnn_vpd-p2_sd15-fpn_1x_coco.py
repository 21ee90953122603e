# Cascade Mask R-CNN with a stride-4 level (P2) from the VAE encoder in
# front of the VPD taps (SD1.5, 80 COCO class prompts), COCO 1x: FPN P2-P6,
# anchors and RoI extractors at mmdet's ResNet strides. For small objects;
# the rest is cascade-mask-rcnn_vpd_sd15-fpn_1x_coco.py. Settings:
# configs/_base_/models/vpd_sd15.py.
_base_ = ['./cascade-mask-rcnn_vpd_sd15-fpn_1x_coco.py']

model = dict(
    backbone={{_base_.coco_p2_backbone}},
    neck=dict(in_channels={{_base_.coco_p2_neck_in_channels}}),
    rpn_head=dict(anchor_generator={{_base_.det_p2_rpn_anchor_generator}}),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides={{_base_.det_p2_roi_strides}}),
        mask_roi_extractor=dict(
            featmap_strides={{_base_.det_p2_roi_strides}})))
