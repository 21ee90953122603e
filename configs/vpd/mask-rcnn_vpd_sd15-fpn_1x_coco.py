# Mask R-CNN with FPN on VPD features (SD1.5 U-Net taps + cross-attention
# maps of the 80 COCO class prompts), COCO 1x. VPD published no instance
# segmentation figure. Taps have strides 8-64: FPN adds 1/128, anchors
# start at 32 px.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/models/vpd_sd15.py'
]
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)

num_classes = 80
strides = [8, 16, 32, 64]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
        pad_size_divisor=64),
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names='coco',
            text_encoder={{_base_.clip_l14}},
            templates='vpd',
            output='pooled'),
        use_attn=True),
    neck=dict(
        in_channels=[320, 640 + num_classes, 1280 + num_classes, 1280],
        out_channels=256,
        num_outs=5),
    rpn_head=dict(
        anchor_generator=dict(scales=[4], strides=strides + [128])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=strides),
        mask_roi_extractor=dict(featmap_strides=strides)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone.unet': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0))
