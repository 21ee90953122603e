# Tiny VPD + VPDDepthHead (mmseg DepthEstimator) for integration tests.
# Depth conditions each image on one class (scene) embedding: mmseg's
# DepthEstimator passes (inputs, category_id) to backbones with
# class_embed_select; unknown scenes (-1) use the mean embedding.
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
default_scope = 'mmseg'

num_scenes = 5
tiny_unet_cfg = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=2,
    norm_num_groups=32,
    cross_attention_dim=32,
    attention_head_dim=4)
tiny_vae_cfg = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=64)

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
        unet_cfg=tiny_unet_cfg,
        vae_cfg=tiny_vae_cfg,
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
