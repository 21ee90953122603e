"""What a diffusion backbone checks and does to its images before the VAE:
image checks, padding and cropping (argument checks: the SD core's)."""
import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdiff.utils.image_size import check_image_size

def as_pad_shape(pad_shape: Optional[Union[int, Sequence[int]]]
                 ) -> Optional[Tuple[int, int]]:
    """``pad_shape`` as an ``(h, w)`` tuple (or None)."""
    if pad_shape is None:
        return None
    if isinstance(pad_shape, int):
        return (pad_shape, pad_shape)
    return tuple(pad_shape)


def check_images(backbone, inputs: Tensor) -> None:
    """Refuse images of the wrong shape, too small, or holding NaN/inf.

    Args:
        backbone: The :class:`DiffusionBackbone` (its ``in_channels`` and
            sizes).
        inputs (Tensor): ``(B, C, H, W)`` images in [-1, 1].
    """
    name = type(backbone).__name__
    if inputs.ndim != 4 or inputs.shape[1] != backbone.in_channels:
        raise ValueError(
            f'{name} expects images (B, {backbone.in_channels}, H, W) '
            f'normalised to [-1, 1], got shape {tuple(inputs.shape)}. Fix: '
            'use RGB inputs (data preprocessor mean=[127.5] * 3, '
            'std=[127.5] * 3, bgr_to_rgb=True) or a VAE whose in_channels '
            'match.')
    check_image_size(backbone, inputs)  # at least one latent pixel
    if not torch.isfinite(inputs).all():
        raise FloatingPointError(
            f'{name} received images holding NaN/inf values (after the data '
            'preprocessor): features and metrics would be meaningless. Fix: '
            'check data_preprocessor mean/std (a std of 0 divides by zero) '
            'and the images/transforms.')


def pad_images(inputs: Tensor, size_divisor: int,
               pad_shape: Optional[Tuple[int, int]] = None,
               pad_val: float = 0.) -> Tuple[Tensor, Tuple[int, int]]:
    """Pad (bottom/right) to a multiple of ``size_divisor``.

    Args:
        inputs (Tensor): ``(B, C, H, W)``.
        size_divisor (int): The U-Net multiple (VAE x U-Net factor).
        pad_shape (tuple[int, int], optional): Pad to at least this
            ``(h, w)`` first (mmseg-VPD). Defaults to None.
        pad_val (float): Padding value. Defaults to 0.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded images and the size the
        outputs are cropped to (the input's, or at least ``pad_shape``).
    """
    height, width = inputs.shape[-2:]
    if pad_shape is not None:
        height, width = max(height, pad_shape[0]), max(width, pad_shape[1])
    pad_h = math.ceil(height / size_divisor) * size_divisor - \
        inputs.shape[-2]
    pad_w = math.ceil(width / size_divisor) * size_divisor - inputs.shape[-1]
    if pad_h or pad_w:
        inputs = F.pad(inputs, (0, pad_w, 0, pad_h), value=pad_val)
    return inputs, (height, width)


def crop(feat: Tensor, stride: int, out_hw: Tuple[int, int]) -> Tensor:
    """A stride-``stride`` map cropped to ``ceil(out_hw / stride)``."""
    return feat[..., :math.ceil(out_hw[0] / stride),
                :math.ceil(out_hw[1] / stride)]
