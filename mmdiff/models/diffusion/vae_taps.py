"""Extra pyramid levels from the VAE encoder the backbone already runs.

Every U-Net feature starts at the VAE factor (stride 8 for SD): the encoder
computes finer activations (SD's VAE: 128 channels at stride 2 after
``down_blocks.0``, 256 at stride 4 after ``down_blocks.1``) and drops them.
:func:`vae_tap_paths` names them, :func:`probe_vae_taps` measures their
channels and strides once at build time; the backbone records them with a
:class:`~mmdiff.models.diffusion.taps.FeatureTaps` (no early stop) during the
one encoder pass that makes the latents, so no second VAE pass runs.
"""
from typing import List, Sequence, Tuple, Union

import torch
from torch import nn

from .taps import FeatureTaps

VaeTap = Union[int, str]


def vae_tap_paths(encoder: nn.Module, taps: Sequence[VaeTap]) -> List[str]:
    """Module paths (inside ``vae.encoder``) of the VAE taps, validated.

    Args:
        encoder (nn.Module): A diffusers VAE ``Encoder`` (``vae.encoder``).
        taps (Sequence[int | str]): An int ``i`` names the output of
            ``down_blocks[i]`` (after its downsampler); a str is a dotted
            path from ``vae.encoder.named_modules()``, e.g.
            ``'down_blocks.1.resnets.1'``.

    Returns:
        list[str]: One path per tap, in the given order.

    Raises:
        ValueError: On an index out of range, an unknown path, a repeated
            tap or a value of another type.
    """
    if isinstance(taps, (str, int)):
        raise ValueError(f'vae_taps must be a sequence of block indices or '
                         f'module paths, got {taps!r}; e.g. vae_taps=(1, ).')
    num_blocks = len(encoder.down_blocks)
    paths = []
    for tap in taps:
        if isinstance(tap, bool) or not isinstance(tap, (int, str)):
            raise ValueError(
                f'vae_taps entries are down-block indices (int) or module '
                f'paths of vae.encoder (str), got {tap!r}.')
        if isinstance(tap, int):
            if not 0 <= tap < num_blocks:
                raise ValueError(
                    f'vae_taps index {tap} is out of range: the VAE encoder '
                    f'has {num_blocks} down blocks (0..{num_blocks - 1}; '
                    'SD: 0 = stride 2, 1 = stride 4, 2 = stride 8).')
            tap = f'down_blocks.{tap}'
        if tap in paths:
            raise ValueError(f'vae_taps names {tap!r} twice: {list(taps)}.')
        paths.append(tap)
    return paths


def vae_feature_taps(encoder: nn.Module, paths: Sequence[str]) -> FeatureTaps:
    """Hooks recording ``paths`` of ``encoder`` (never stopping early: the
    encoder must finish to give the latents)."""
    return FeatureTaps(encoder, paths, stop_early=False, owner='VAE encoder',
                       example="'down_blocks.1' (or the index 1)")


def probe_vae_taps(encoder: nn.Module, taps: FeatureTaps, in_channels: int,
                   vae_factor: int) -> Tuple[List[int], List[int]]:
    """Channels and strides of the VAE taps, from one tiny encoder pass.

    Args:
        encoder (nn.Module): ``vae.encoder``.
        taps (FeatureTaps): Its taps (:func:`vae_feature_taps`).
        in_channels (int): Image channels.
        vae_factor (int): Image pixels per latent pixel.

    Returns:
        tuple[list[int], list[int]]: Channels and strides, in tap order.
    """
    if not taps.paths:
        return [], []
    param = next(encoder.parameters())
    size = 2 * vae_factor
    images = torch.zeros(1, in_channels, size, size, device=param.device,
                         dtype=param.dtype)
    with taps.capture() as feats, torch.no_grad():
        encoder(images)
    channels = [feats[path].shape[1] for path in taps.paths]
    strides = [size // feats[path].shape[-1] for path in taps.paths]
    return channels, strides
