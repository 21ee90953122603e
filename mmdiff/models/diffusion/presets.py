"""diffusers configs of the released Stable Diffusion U-Nets and VAE.

For building the real shapes without weights, e.g. on the meta device to
check channels or estimate memory (``with torch.device('meta'): ...``).
SD1.x's U-Net is ``UNet2DConditionModel``'s default layout with 768-d text.
"""
SD15_UNET = dict(cross_attention_dim=768, sample_size=64)
SD21_UNET = dict(
    cross_attention_dim=1024, sample_size=96,
    attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SDXL_UNET = dict(
    sample_size=128, cross_attention_dim=2048,
    down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D'),
    up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'),
    block_out_channels=(320, 640, 1280),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20), use_linear_projection=True,
    addition_embed_type='text_time', addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816)
SD_VAE = dict(
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    latent_channels=4, sample_size=512)


def real_unet_cfg(pretrained: str) -> dict:
    """The U-Net config of a released model, guessed from its id or path
    (SDXL, SD 2.x, else SD 1.x)."""
    name = str(pretrained).lower()
    if 'xl' in name:
        return SDXL_UNET
    if 'stable-diffusion-2' in name or 'sd2' in name or 'sd-2' in name:
        return SD21_UNET
    return SD15_UNET

# Diffusion transformers (diffusers' transformer/ and vae/ config.json of the
# released models): SD3.5-medium (MMDiT, 24 blocks of width 1536, dual
# attention in the first 13) and FLUX.1-dev (19 joint + 38 single blocks of
# width 3072), with their 16-channel VAEs.
SD35_MEDIUM_TRANSFORMER = dict(
    sample_size=128, patch_size=2, in_channels=16, out_channels=16,
    num_layers=24, attention_head_dim=64, num_attention_heads=24,
    joint_attention_dim=4096, caption_projection_dim=1536,
    pooled_projection_dim=2048, pos_embed_max_size=384,
    dual_attention_layers=tuple(range(13)), qk_norm='rms_norm')
FLUX1_DEV_TRANSFORMER = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
    attention_head_dim=128, num_attention_heads=24,
    joint_attention_dim=4096, pooled_projection_dim=768,
    guidance_embeds=True, axes_dims_rope=(16, 56, 56))
SD3_VAE = dict(SD_VAE, latent_channels=16, sample_size=1024,
               use_quant_conv=False, use_post_quant_conv=False,
               scaling_factor=1.5305, shift_factor=0.0609)
FLUX_VAE = dict(SD3_VAE, scaling_factor=0.3611, shift_factor=0.1159)
# Sana 1600M 1024px: the transformer is SanaTransformer2DModel's defaults
# in diffusers 0.42 (20 blocks of width 70 x 32 = 2240, linear
# self-attention, cross-attention (20 heads of 112) to Gemma-2 tokens of
# width 2304, 1x1 patches, no position embeddings); its DC-AE is
# 'dc-ae-f32c32-sana-1.0' of diffusers' scripts/convert_dcae_to_diffusers.py
# (huggingface/diffusers@f7c4706: 6 levels, 32 latent channels,
# scaling_factor 0.41407).
SANA_1600M_TRANSFORMER = dict(
    in_channels=32, out_channels=32, num_attention_heads=70,
    attention_head_dim=32, num_layers=20, num_cross_attention_heads=20,
    cross_attention_head_dim=112, cross_attention_dim=2240,
    caption_channels=2304, mlp_ratio=2.5, attention_bias=False,
    sample_size=32, patch_size=1, norm_elementwise_affine=False,
    norm_eps=1e-6, interpolation_scale=None)
SANA_DC_AE = dict(
    in_channels=3, latent_channels=32, attention_head_dim=32,
    encoder_block_types=('ResBlock', ) * 3 + ('EfficientViTBlock', ) * 3,
    decoder_block_types=('ResBlock', ) * 3 + ('EfficientViTBlock', ) * 3,
    encoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
    decoder_block_out_channels=(128, 256, 512, 512, 1024, 1024),
    encoder_layers_per_block=(2, 2, 2, 3, 3, 3),
    decoder_layers_per_block=(3, 3, 3, 3, 3, 3),
    encoder_qkv_multiscales=((), (), (), (5, ), (5, ), (5, )),
    decoder_qkv_multiscales=((), (), (), (5, ), (5, ), (5, )),
    upsample_block_type='interpolate', downsample_block_type='conv',
    decoder_norm_types='rms_norm', decoder_act_fns='silu',
    scaling_factor=0.41407)
DIT_PRESETS = {
    'stabilityai/stable-diffusion-3.5-medium':
    ('sd3', SD35_MEDIUM_TRANSFORMER, SD3_VAE),
    'black-forest-labs/FLUX.1-dev': ('flux', FLUX1_DEV_TRANSFORMER,
                                     FLUX_VAE),
    'Efficient-Large-Model/Sana_1600M_1024px_diffusers':
    ('sana', SANA_1600M_TRANSFORMER, SANA_DC_AE),
}


def real_dit_cfg(pretrained: str) -> tuple:
    """``(family, transformer_cfg, vae_cfg)`` of a released DiT hub id."""
    if pretrained not in DIT_PRESETS:
        raise KeyError(f'No preset for {pretrained!r}; known: '
                       f'{sorted(DIT_PRESETS)}.')
    return DIT_PRESETS[pretrained]
