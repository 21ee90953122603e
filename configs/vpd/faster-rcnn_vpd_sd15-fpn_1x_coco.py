# Faster R-CNN with FPN on VPD features (SD1.5 U-Net taps + cross-attention
# maps of the 80 COCO class prompts), COCO 1x. VPD published no detection
# figure. The taps have strides 8-64 (no 1/4 level): FPN adds a 1/128 level,
# anchors start at 32 px (scale 4 at stride 8).
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
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
        bbox_roi_extractor=dict(featmap_strides=strides)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone.unet': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0))
