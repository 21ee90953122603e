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


class FlowMatchNoise:
    """Rectified-flow noising of SD3 / FLUX (``scheduler.add_noise``
    interface for :func:`add_noise`).

    ``x_t = (1 - sigma) * x_0 + sigma * noise`` with ``sigma = t / 1000``:
    diffusers' ``FlowMatchEulerDiscreteScheduler.scale_noise`` at a timestep
    ``t`` of its (shifted) schedule, whose timesteps are ``sigma * 1000``
    (the value the SD3 transformer receives; FLUX receives ``sigma``).

    Args:
        num_train_timesteps (int): Defaults to 1000.
    """

    def __init__(self, num_train_timesteps: int = 1000) -> None:
        self.num_train_timesteps = num_train_timesteps

    def add_noise(self, latents: Tensor, noise: Tensor,
                  timesteps: Tensor) -> Tensor:
        sigma = timesteps.to(latents.dtype) / self.num_train_timesteps
        sigma = sigma.view(-1, *([1] * (latents.ndim - 1)))
        return (1 - sigma) * latents + sigma * noise


def dit_noise_scheduler(kind: str, flow: bool):
    """The noise schedule of a diffusion transformer for ``kind``.

    Args:
        kind (str): ``'none'``, ``'seeded'`` or ``'random'``.
        flow (bool): Rectified flow (SD3, FLUX: :class:`FlowMatchNoise`);
            else PixArt's DDPM schedule (``linear`` betas 0.0001-0.02, 1000
            steps, as its released ``scheduler_config.json``).

    Returns:
        FlowMatchNoise | diffusers.DDPMScheduler | None
    """
    check_noise(kind)
    if kind == 'none':
        return None
    if flow:
        return FlowMatchNoise()
    from diffusers import DDPMScheduler
    return DDPMScheduler(beta_start=0.0001, beta_end=0.02,
                         beta_schedule='linear', num_train_timesteps=1000)
