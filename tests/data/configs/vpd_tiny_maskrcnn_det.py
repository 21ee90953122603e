# Tiny VPD + FPN Mask R-CNN (mmdet) for integration tests.
# VPD's features have strides 8, 16, 32, 64 (no 1/4 level): FPN adds 1/128,
# anchors and RoI extractors use those strides. Tiny random SD-shaped
# U-Net/VAE (mmdiff.models.diffusion.tiny_sd_configs), K=3 learned class
# embeddings with attention maps: out_channels = (32, 64 + 3, 64 + 3, 64).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    '../../../configs/_base_/models/vpd_tiny.py'
]
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
default_scope = 'mmdet'

num_classes = 3

model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_size_divisor=64),
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    neck=dict(
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        out_channels=32,
        num_outs=5),
    rpn_head=dict(
        in_channels=32,
        feat_channels=32,
        anchor_generator=dict(scales=[4], strides=[8, 16, 32, 64, 128])),
    roi_head=dict(
        bbox_roi_extractor=dict(
            out_channels=32, featmap_strides=[8, 16, 32, 64]),
        bbox_head=dict(
            in_channels=32, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(
            out_channels=32, featmap_strides=[8, 16, 32, 64]),
        mask_head=dict(
            in_channels=32, conv_out_channels=32, num_classes=num_classes)))
