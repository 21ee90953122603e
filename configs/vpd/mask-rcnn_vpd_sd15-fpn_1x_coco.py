# Mask R-CNN with FPN on VPD features (SD1.5 U-Net taps + cross-attention
# maps of the 80 COCO class prompts), COCO 1x. VPD published no instance
# segmentation figure. Shared settings: configs/_base_/models/vpd_sd15.py.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/models/vpd_sd15.py', '../_base_/schedules/vpd_det_adamw.py',
    '../_base_/runtime/mmdiff_hooks.py'
]

model = dict(
    data_preprocessor={{_base_.det_data_preprocessor}},
    backbone={{_base_.coco_backbone}},
    neck=dict(in_channels={{_base_.coco_neck_in_channels}}, num_outs=5),
    rpn_head=dict(anchor_generator={{_base_.det_rpn_anchor_generator}}),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides={{_base_.det_roi_strides}}),
        mask_roi_extractor=dict(featmap_strides={{_base_.det_roi_strides}})))
optim_wrapper = {{_base_.det_optim_wrapper}}
# atomic checkpoints (no truncated file after a kill)
default_hooks = dict(checkpoint=dict(type='mmdiff.AtomicCheckpointHook'))
