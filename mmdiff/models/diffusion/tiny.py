"""Tiny Stable-Diffusion-shaped configs for tests and demos.

Same layout as SD1.5 (4 U-Net levels, cross-attention in the 3 finest, 2
layers per block, SD1-style ``attention_head_dim`` = number of heads; a
4-channel VAE with a downsampling factor 8), with small widths. The SD1
shapes are defined once, in ``configs/_base_/models/vpd_tiny.py`` (the
demos' model base); the functions here read them from that file.
"""
import copy
import functools
import os.path as osp
from typing import Optional, Tuple

_MODELS = ('_base_', 'models')


@functools.lru_cache(maxsize=None)
def tiny_base(filename: str = 'vpd_tiny.py') -> dict:
    """The variables of a tiny-model base in ``configs/_base_/models/``
    (``vpd_tiny.py``: the U-Net and VAE, ``dit_tiny.py``: the PixArt
    transformer): in the installed package (``mmdiff/.mim/configs``), else
    in the checkout's ``configs/``. The shapes are defined there once."""
    from mmengine.config import Config
    package = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for root in (osp.join(package, '.mim', 'configs'),
                 osp.join(osp.dirname(package), 'configs')):
        path = osp.join(root, *_MODELS, filename)
        if osp.isfile(path):
            return Config.fromfile(path).to_dict()
    raise FileNotFoundError(
        f'{osp.join(*_MODELS, filename)} is neither in {package}/.mim/'
        'configs nor in the checkout\'s configs/: reinstall mmdiff '
        '(pip install .).')


def _tiny_base() -> Tuple[dict, dict]:
    base = tiny_base('vpd_tiny.py')
    return base['tiny_unet_cfg'], base['tiny_vae_cfg']


def tiny_unet_cfg(cross_attention_dim: Optional[int] = None,
                  block_out_channels: Optional[Tuple[int, ...]] = None,
                  num_heads: Optional[int] = None) -> dict:
    """A tiny SD1-shaped ``UNet2DConditionModel`` config: ``tiny_unet_cfg``
    of ``configs/_base_/models/vpd_tiny.py``, with the given changes.

    Args:
        cross_attention_dim (int, optional): Text embedding width.
            Defaults to None (the base's, 32).
        block_out_channels (tuple[int], optional): Widths of the 4 levels.
            Defaults to None (the base's, (32, 64, 64, 64)).
        num_heads (int, optional): Attention heads. Defaults to None (the
            base's, 4).

    Returns:
        dict: Keyword arguments of ``UNet2DConditionModel``.
    """
    cfg = copy.deepcopy(_tiny_base()[0])
    for key, value in (('cross_attention_dim', cross_attention_dim),
                       ('block_out_channels', block_out_channels),
                       ('attention_head_dim', num_heads)):
        if value is not None:
            cfg[key] = tuple(value) if isinstance(value, list) else value
    return cfg


def tiny_vae_cfg(block_out_channels: Optional[Tuple[int, ...]] = None
                 ) -> dict:
    """A tiny SD-shaped ``AutoencoderKL`` config (factor 8, 4 latents):
    ``tiny_vae_cfg`` of ``configs/_base_/models/vpd_tiny.py``.

    Args:
        block_out_channels (tuple[int], optional): Widths of the levels
            (one encoder/decoder block each). Defaults to None (the base's,
            (32, 32, 64, 64)).

    Returns:
        dict: Keyword arguments of ``AutoencoderKL``.
    """
    cfg = copy.deepcopy(_tiny_base()[1])
    if block_out_channels is not None:
        n = len(block_out_channels)
        cfg.update(down_block_types=('DownEncoderBlock2D', ) * n,
                   up_block_types=('UpDecoderBlock2D', ) * n,
                   block_out_channels=tuple(block_out_channels))
    return cfg


def tiny_sd2_unet_cfg(cross_attention_dim: int = 1024,
                      block_out_channels: Tuple[int, ...] = (32, 64, 64, 64),
                      num_heads: Tuple[int, ...] = (2, 4, 4, 4)) -> dict:
    """A tiny SD 2.x-shaped ``UNet2DConditionModel`` config.

    SD 2.x keeps SD1's block layout but has 64-channel heads, i.e. a head
    count per level (diffusers' ``attention_head_dim``, which
    ``UNet2DConditionModel`` uses as the number of heads: ``(5, 10, 20,
    20)`` for SD2), ``use_linear_projection=True`` and a 1024-d context
    (OpenCLIP ViT-H/14).

    Args:
        cross_attention_dim (int): Defaults to 1024 (SD2's).
        block_out_channels (tuple[int]): Defaults to (32, 64, 64, 64).
        num_heads (tuple[int]): ``attention_head_dim`` per level (heads of
            16 channels here). Defaults to (2, 4, 4, 4).

    Returns:
        dict: Keyword arguments of ``UNet2DConditionModel``.
    """
    cfg = tiny_unet_cfg(cross_attention_dim, block_out_channels)
    cfg.update(attention_head_dim=tuple(num_heads),
               use_linear_projection=True)
    return cfg


def tiny_sdxl_unet_cfg(cross_attention_dim: int = 2048,
                       pooled_dim: int = 1280,
                       time_embed_dim: int = 256,
                       block_out_channels: Tuple[int, ...] = (32, 64, 64),
                       transformer_depth: Tuple[int, ...] = (1, 2, 2)
                       ) -> dict:
    """A tiny SDXL-shaped ``UNet2DConditionModel`` config.

    SDXL's layout: 3 levels, no attention in the finest, transformer depth
    per level (SDXL: ``(1, 2, 10)``), linear projections, a 2048-d context
    (CLIP ViT-L + ViT-bigG tokens) and ``text_time`` added conditioning: a
    pooled text embedding (1280) plus 6 micro-conditioning ids embedded
    with ``addition_time_embed_dim`` (256) each.

    Args:
        cross_attention_dim (int): Defaults to 2048 (SDXL's).
        pooled_dim (int): Width of ``text_embeds``. Defaults to 1280.
        time_embed_dim (int): ``addition_time_embed_dim``. Defaults to 256.
        block_out_channels (tuple[int]): Defaults to (32, 64, 64).
        transformer_depth (tuple[int]): ``transformer_layers_per_block``.
            Defaults to (1, 2, 2).

    Returns:
        dict: Keyword arguments of ``UNet2DConditionModel``.
    """
    return dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D',
                          'CrossAttnDownBlock2D'),
        up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                        'UpBlock2D'),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=2,
        transformer_layers_per_block=tuple(transformer_depth),
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        norm_num_groups=32,
        cross_attention_dim=cross_attention_dim,
        addition_embed_type='text_time',
        addition_time_embed_dim=time_embed_dim,
        projection_class_embeddings_input_dim=pooled_dim +
        6 * time_embed_dim)


def tiny_sd_configs(cross_attention_dim: Optional[int] = None
                    ) -> Tuple[dict, dict]:
    """Both tiny configs, ``(unet_cfg, vae_cfg)``.

    Args:
        cross_attention_dim (int, optional): Text embedding width.
            Defaults to None (the base's, 32).

    Returns:
        tuple[dict, dict]: ``unet_cfg`` and ``vae_cfg``.
    """
    return tiny_unet_cfg(cross_attention_dim), tiny_vae_cfg()
