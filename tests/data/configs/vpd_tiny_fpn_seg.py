# Tiny VPD + Semantic FPN (mmseg EncoderDecoder) for integration tests.
# Same structure as the ADE20K VPD config, with a tiny random SD-shaped
# U-Net/VAE (mmdiff.models.diffusion.tiny_sd_configs) and K=4 learned class
# embeddings: out_channels = (32, 64 + 4, 64 + 4, 64).
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
default_scope = 'mmseg'

num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)
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
        unet_cfg=tiny_unet_cfg,
        vae_cfg=tiny_vae_cfg,
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
