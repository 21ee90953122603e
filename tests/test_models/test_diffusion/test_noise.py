"""mmdiff.models.diffusion.noise: SD's DDPM noise at the U-Net's timestep;
the SD core's scheduler (the model folder's, else SD's)."""
import json

import pytest
import torch

from mmdiff.models.diffusion.noise import add_noise, check_noise
from mmdiff.models.diffusion.sd_core import sd_scheduler


def _sd_alpha_bar(t: int) -> float:
    """ldm's ``make_beta_schedule('linear', linear_start=0.00085,
    linear_end=0.012)`` (SD's v1-inference.yaml): betas linear in sqrt."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000,
                           dtype=torch.float64)**2
    return float(torch.cumprod(1 - betas, 0)[t])


def test_none_returns_the_latents():
    latents = torch.randn(2, 4, 8, 8)
    assert add_noise(sd_scheduler(), 'none', latents, 500) is latents


def test_seeded_noise_is_sd_ddpm_and_repeatable():
    sched = sd_scheduler()
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
    sched = sd_scheduler()
    latents = torch.zeros(1, 4, 8, 8)
    assert not torch.equal(add_noise(sched, 'random', latents, 999),
                           add_noise(sched, 'random', latents, 999))


def test_bad_kind():
    with pytest.raises(ValueError, match="noise must be 'none', 'seeded'"):
        check_noise('gaussian')


def test_scheduler_is_the_model_folders_when_it_has_one(tmp_path):
    sd = sd_scheduler()
    assert (sd.config.beta_start, sd.config.beta_end) == (0.00085, 0.012)
    assert sd.config.beta_schedule == 'scaled_linear'
    assert sd_scheduler(str(tmp_path)).config == sd.config  # none there
    (tmp_path / 'scheduler').mkdir()
    cfg = tmp_path / 'scheduler' / 'scheduler_config.json'
    # SD2-768's folder: a DDIM config with v-prediction and other betas
    cfg.write_text(json.dumps(dict(
        _class_name='DDIMScheduler', beta_start=0.001, beta_end=0.02,
        beta_schedule='scaled_linear', num_train_timesteps=1000,
        prediction_type='v_prediction', steps_offset=1)))
    own = sd_scheduler(str(tmp_path))
    assert (own.config.beta_start, own.config.beta_end) == (0.001, 0.02)
    assert own.config.prediction_type == 'v_prediction'
    assert sd_scheduler(str(tmp_path), prediction_type='epsilon'
                        ).config.prediction_type == 'epsilon'  # caller wins
    cfg.write_text('{not json')
    with pytest.raises((OSError, ValueError)):
        sd_scheduler(str(tmp_path))
