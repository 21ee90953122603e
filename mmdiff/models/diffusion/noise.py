"""The backbone's noise policy: none, seeded or random DDPM noise.

Latents are noised with the model's DDPM schedule (the SD core's
``scheduler``: the model folder's, else SD's training schedule) at the
U-Net's timestep.
"""
from typing import Optional

import torch
from torch import Tensor

NOISE_KINDS = ('none', 'seeded', 'random')


def check_noise(kind: str) -> None:
    """Refuse a noise policy other than ``'none'``, ``'seeded'`` and
    ``'random'``."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be 'none', 'seeded' or 'random', "
                         f'got {kind!r}.')


def add_noise(scheduler, kind: str, latents: Tensor, timestep: int,
              seed: Optional[int] = None) -> Tensor:
    """Noise ``latents`` to ``timestep`` under the policy ``kind``.

    Args:
        scheduler: A ``DDPMScheduler`` (unused for ``'none'``).
        kind (str): ``'none'`` (latents returned as they are), ``'seeded'``
            (the same noise for a seed at every call) or ``'random'``.
        latents (Tensor): ``(B, C, h, w)``.
        timestep (int): Diffusion timestep.
        seed (int, optional): Seed of ``'seeded'`` noise.

    Returns:
        Tensor: Noised latents, same shape and dtype.
    """
    if kind == 'none':
        return latents
    generator = None
    if kind == 'seeded':
        generator = torch.Generator(latents.device).manual_seed(seed)
    noise = torch.randn(latents.shape, generator=generator,
                        device=latents.device, dtype=latents.dtype)
    t = torch.full((latents.shape[0], ), timestep, device=latents.device,
                   dtype=torch.long)
    return scheduler.add_noise(latents, noise, t)
