# Tiny VPD + VPDDepthHead (mmseg DepthEstimator) for integration tests.
# Depth conditions each image on one class (scene) embedding: mmseg's
# DepthEstimator passes (inputs, category_id) to backbones with
# class_embed_select; unknown scenes (-1) use the mean embedding.
_base_ = ['../../../configs/_base_/models/vpd_tiny.py']
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
default_scope = 'mmseg'

num_scenes = 5

model = dict(
    type='DepthEstimator',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=0,
        size=(64, 64)),
    backbone=dict(
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        class_embeddings=dict(num_classes=num_scenes, dim=32),
        class_embed_select=True,
        use_attn=False),
    decode_head=dict(
        type='VPDDepthHead',
        max_depth=10,
        in_channels=[32, 64, 64, 64],
        embed_dim=8,
        feature_dim=64,
        num_deconv_layers=3,
        num_deconv_filters=(16, 16, 16),
        fmap_border=0,
        loss_decode=dict(type='SiLogLoss')),
    test_cfg=dict(mode='whole'))
