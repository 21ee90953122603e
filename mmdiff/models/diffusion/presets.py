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
