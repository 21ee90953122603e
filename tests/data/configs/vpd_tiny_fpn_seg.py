# Tiny VPD + Semantic FPN (mmseg EncoderDecoder) for integration tests.
# Same structure as the ADE20K VPD config, with a tiny random SD-shaped
# U-Net/VAE (mmdiff.models.diffusion.tiny_sd_configs) and K=4 learned class
# embeddings: out_channels = (32, 64 + 4, 64 + 4, 64).
_base_ = [
    'mmseg::_base_/models/fpn_r50.py',
    '../../../configs/_base_/models/vpd_tiny.py'
]
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
default_scope = 'mmseg'

num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)

data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(64, 64))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    neck=dict(
        type='FPN',
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        out_channels=32,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[32, 32, 32, 32],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=16,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False),
    test_cfg=dict(mode='whole'))
