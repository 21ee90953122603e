"""The backbone's noise policy: none, seeded or random DDPM noise.

Latents are noised with Stable Diffusion's training schedule (DDPM,
``scaled_linear`` betas 0.00085-0.012, 1000 steps) at the U-Net's timestep.
"""
from typing import Optional

import torch
from torch import Tensor

NOISE_KINDS = ('none', 'seeded', 'random')


def sd_noise_scheduler(kind: str):
    """SD's DDPM scheduler for ``kind`` (None for ``'none'``).

    Args:
        kind (str): ``'none'``, ``'seeded'`` or ``'random'``.

    Returns:
        diffusers.DDPMScheduler | None
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be 'none', 'seeded' or 'random', "
                         f'got {kind!r}.')
    if kind == 'none':
        return None
    from diffusers import DDPMScheduler
    return DDPMScheduler(beta_start=0.00085, beta_end=0.012,
                         beta_schedule='scaled_linear',
                         num_train_timesteps=1000)


def add_noise(scheduler, kind: str, latents: Tensor, timestep: int,
              seed: Optional[int] = None) -> Tensor:
    """Noise ``latents`` to ``timestep`` under the policy ``kind``.

    Args:
        scheduler: From :func:`sd_noise_scheduler` (None for ``'none'``).
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
