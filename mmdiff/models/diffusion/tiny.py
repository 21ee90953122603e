"""Tiny Stable-Diffusion-shaped configs for tests and demos.

Same layout as SD1.5 (4 U-Net levels, cross-attention in the 3 finest, 2
layers per block, SD1-style ``attention_head_dim`` = number of heads; a
4-channel VAE with a downsampling factor 8), with small widths.
"""
from typing import Tuple


def tiny_unet_cfg(cross_attention_dim: int = 32,
                  block_out_channels: Tuple[int, ...] = (32, 64, 64, 64),
                  num_heads: int = 4) -> dict:
    """A tiny SD1-shaped ``UNet2DConditionModel`` config.

    Args:
        cross_attention_dim (int): Text embedding width. Defaults to 32.
        block_out_channels (tuple[int]): Widths of the 4 levels.
            Defaults to (32, 64, 64, 64).
        num_heads (int): Attention heads. Defaults to 4.

    Returns:
        dict: Keyword arguments of ``UNet2DConditionModel``.
    """
    return dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                          'CrossAttnDownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D',
                        'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=2,
        norm_num_groups=32,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=num_heads)


def tiny_vae_cfg(block_out_channels: Tuple[int, ...] = (32, 32, 64, 64)
                 ) -> dict:
    """A tiny SD-shaped ``AutoencoderKL`` config (factor 8, 4 latents).

    Args:
        block_out_channels (tuple[int]): Widths of the 4 levels.
            Defaults to (32, 32, 64, 64).

    Returns:
        dict: Keyword arguments of ``AutoencoderKL``.
    """
    n = len(block_out_channels)
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=('DownEncoderBlock2D', ) * n,
        up_block_types=('UpDecoderBlock2D', ) * n,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64)


def tiny_sd_configs(cross_attention_dim: int = 32) -> Tuple[dict, dict]:
    """Both tiny configs, ``(unet_cfg, vae_cfg)``.

    Args:
        cross_attention_dim (int): Text embedding width. Defaults to 32.

    Returns:
        tuple[dict, dict]: ``unet_cfg`` and ``vae_cfg``.
    """
    return tiny_unet_cfg(cross_attention_dim), tiny_vae_cfg()
