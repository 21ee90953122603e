"""The smallest image a diffusion backbone can see (called on its inputs)."""
from typing import Optional

from torch import Tensor


def check_image_size(backbone, inputs: Tensor,
                     minimum: Optional[int] = None) -> None:
    """Refuse images smaller than the backbone can see.

    The backbone pads images up to a multiple of ``size_divisor`` (64 for
    SD), so any size runs; but below the VAE factor (8 for SD) the U-Net
    gets less than one latent pixel of image, all else is padding.

    Args:
        backbone: A :class:`~mmdiff.models.backbones.DiffusionBackbone`.
        inputs (Tensor): ``(B, C, H, W)`` images.
        minimum (int, optional): Smallest height/width accepted. Defaults
            to None: the VAE factor. Pass ``backbone.size_divisor`` to also
            refuse images padded at the U-Net's coarsest level.

    Raises:
        ValueError: Naming the minimum size and the fix.
    """
    if minimum is None:
        minimum = backbone.vae_factor
    pad = getattr(backbone, 'pad_shape', None) or (0, 0)
    height, width = inputs.shape[-2:]
    if max(height, pad[0]) >= minimum and max(width, pad[1]) >= minimum:
        return
    raise ValueError(
        f'Image of {height}x{width} pixels is smaller than the U-Net\'s '
        f'minimum {minimum}x{minimum}: the VAE downsamples by '
        f'{backbone.vae_factor}, so the U-Net would see less than one latent '
        'pixel of image (images are padded to multiples of '
        f'{backbone.size_divisor}). Fix: resize in the pipeline (e.g. '
        "dict(type='Resize', scale=(512, 512))) or check that the inputs are "
        '(B, 3, H, W) images, not crops or feature maps.')
