"""mmdiff.models.diffusion.noise: SD's DDPM noise at the U-Net's timestep."""
import pytest
import torch

from mmdiff.models.diffusion.noise import add_noise, sd_noise_scheduler


def _sd_alpha_bar(t: int) -> float:
    """ldm's ``make_beta_schedule('linear', linear_start=0.00085,
    linear_end=0.012)`` (SD's v1-inference.yaml): betas linear in sqrt."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000,
                           dtype=torch.float64)**2
    return float(torch.cumprod(1 - betas, 0)[t])


def test_none_returns_the_latents():
    latents = torch.randn(2, 4, 8, 8)
    assert sd_noise_scheduler('none') is None
    assert add_noise(None, 'none', latents, 500) is latents


def test_seeded_noise_is_sd_ddpm_and_repeatable():
    sched = sd_noise_scheduler('seeded')
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    t = 250
    got = add_noise(sched, 'seeded', latents, t, seed=7)
    noise = torch.randn(latents.shape,
                        generator=torch.Generator().manual_seed(7))
    a = _sd_alpha_bar(t)
    want = a**0.5 * latents + (1 - a)**0.5 * noise
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(got, add_noise(sched, 'seeded', latents, t, seed=7))
    assert not torch.equal(got, add_noise(sched, 'seeded', latents, t, 8))


def test_random_noise_differs_between_calls():
    sched = sd_noise_scheduler('random')
    latents = torch.zeros(1, 4, 8, 8)
    assert not torch.equal(add_noise(sched, 'random', latents, 999),
                           add_noise(sched, 'random', latents, 999))


def test_bad_kind():
    with pytest.raises(ValueError, match="noise must be 'none', 'seeded'"):
        sd_noise_scheduler('gaussian')
