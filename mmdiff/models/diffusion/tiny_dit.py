"""Tiny diffusion-transformer configs (SD3.5, FLUX.1, PixArt-Sigma, Sana
layouts, small widths) for tests and demos, with a matching tiny VAE
(Sana: a tiny DC-AE)."""
import copy
from typing import Tuple

from .tiny import tiny_base, tiny_vae_cfg


def tiny_sd3_cfg(text_dim: int = 32, pooled_dim: int = 64) -> dict:
    """SD3.5-shaped ``SD3Transformer2DModel``: 16 latent channels, 2x2
    patches, RMS q/k norm, a dual-attention first block (SD3.5)."""
    return dict(sample_size=32, patch_size=2, in_channels=16,
                out_channels=16, num_layers=3, attention_head_dim=8,
                num_attention_heads=4, joint_attention_dim=text_dim,
                caption_projection_dim=32, pooled_projection_dim=pooled_dim,
                pos_embed_max_size=32, dual_attention_layers=(0, ),
                qk_norm='rms_norm')


def tiny_flux_cfg(text_dim: int = 32, pooled_dim: int = 32) -> dict:
    """FLUX.1-dev-shaped ``FluxTransformer2DModel``: 16 latent channels
    packed 2x2 (64 inputs), joint then single-stream blocks, guidance."""
    return dict(patch_size=1, in_channels=64, num_layers=2,
                num_single_layers=2, attention_head_dim=16,
                num_attention_heads=2, joint_attention_dim=text_dim,
                pooled_projection_dim=pooled_dim, guidance_embeds=True,
                axes_dims_rope=(4, 4, 8))


def tiny_pixart_cfg(text_dim: int = 32) -> dict:
    """PixArt-Sigma-shaped ``PixArtTransformer2DModel``: 4 latent
    channels, 2x2 patches, ``ada_norm_single``, cross-attention to
    ``text_dim``-wide (T5) tokens: ``tiny_pixart_cfg`` of
    ``configs/_base_/models/dit_tiny.py`` (the DiT demo's model base)."""
    cfg = copy.deepcopy(tiny_base('dit_tiny.py')['tiny_pixart_cfg'])
    cfg['caption_channels'] = text_dim
    return cfg


def tiny_sana_cfg(text_dim: int = 32) -> dict:
    """Sana-shaped ``SanaTransformer2DModel``: 32 latent channels, 1x1
    patches, no position embeddings (as Sana 1600M 1024px), linear
    self-attention, softmax cross-attention to ``text_dim``-wide (Gemma-2)
    tokens with Sana 1.5's q/k RMS norm across heads (so that the maps'
    norm path is tested; 1600M has none)."""
    return dict(in_channels=32, out_channels=32, num_attention_heads=2,
                attention_head_dim=8, num_layers=3,
                num_cross_attention_heads=2, cross_attention_head_dim=8,
                cross_attention_dim=16, caption_channels=text_dim,
                mlp_ratio=2.5, sample_size=4, patch_size=1,
                qk_norm='rms_norm_across_heads')


def tiny_dc_ae_cfg() -> dict:
    """A tiny ``AutoencoderDC`` with the Sana DC-AE's layout: 6 levels
    (32x downsampling), 32 latent channels, ResBlocks then EfficientViT
    (linear-attention) blocks, ``scaling_factor`` only (no shift)."""
    types = ('ResBlock', ) * 3 + ('EfficientViTBlock', ) * 3
    widths = (8, 8, 16, 16, 32, 32)
    scales = ((), (), (), (5, ), (5, ), (5, ))
    return dict(in_channels=3, latent_channels=32, attention_head_dim=8,
                encoder_block_types=types, decoder_block_types=types,
                encoder_block_out_channels=widths,
                decoder_block_out_channels=widths,
                encoder_layers_per_block=(1, ) * 6,
                decoder_layers_per_block=(1, ) * 6,
                encoder_qkv_multiscales=scales,
                decoder_qkv_multiscales=scales,
                upsample_block_type='interpolate',
                downsample_block_type='Conv', scaling_factor=0.41407)


def tiny_dit_vae_cfg(latent_channels: int = 16) -> dict:
    """The tiny SD VAE with SD3/FLUX's latent layout: ``latent_channels``,
    no quant convs, a ``shift_factor`` (SD3's scaling/shift values)."""
    cfg = tiny_vae_cfg()
    if latent_channels == 4:
        return cfg
    cfg.update(latent_channels=latent_channels, use_quant_conv=False,
               use_post_quant_conv=False, scaling_factor=1.5305,
               shift_factor=0.0609)
    return cfg


def tiny_dit_configs(family: str) -> Tuple[dict, dict]:
    """``(transformer_cfg, vae_cfg)`` of a tiny model of ``family``."""
    if family == 'sd3':
        return tiny_sd3_cfg(), tiny_dit_vae_cfg(16)
    if family == 'flux':
        return tiny_flux_cfg(), tiny_dit_vae_cfg(16)
    if family == 'pixart':
        return tiny_pixart_cfg(), tiny_dit_vae_cfg(4)
    if family == 'sana':
        return tiny_sana_cfg(), tiny_dc_ae_cfg()
    raise ValueError(f"family must be 'sd3', 'flux', 'pixart' or 'sana', "
                     f'got {family!r}.')
