"""Shared tiny components: an SD1-shaped ldm model written as a single file.

ldm's ``UNetModel``/``Encoder``/``Decoder`` (PyPI ``stable-diffusion-sdkit``,
through ``mmdiff.testing.ldm``) are an independent implementation of Stable
Diffusion; random weights in SD's original key layout exercise diffusers'
single-file conversion.
"""
import pytest
import torch

from mmdiff.models.diffusion import tiny_sd_configs


@pytest.fixture(scope='session')
def ldm_sd():
    """Seeded tiny ldm U-Net + VAE (``LatentDiffusion`` layout), in eval."""
    from mmdiff.testing import ldm
    torch.manual_seed(0)  # ldm's own init
    gen = torch.Generator().manual_seed(0)
    return ldm.randomise(ldm.LdmStableDiffusion(), gen).eval()


@pytest.fixture(scope='session')
def ldm_models(ldm_sd):
    """The ldm U-Net and VAE of :func:`ldm_sd`."""
    return ldm_sd.model.diffusion_model, ldm_sd.first_stage_model


@pytest.fixture(scope='session')
def single_file_ckpt(ldm_sd, tmp_path_factory):
    """Paths of an SD-layout ``.safetensors`` and its ldm yaml."""
    from mmdiff.testing import ldm
    root = tmp_path_factory.mktemp('sd_single_file')
    ckpt, cfg = root / 'tiny_sd.safetensors', root / 'tiny_sd.yaml'
    ldm.save_single_file(ldm_sd, str(ckpt), str(cfg))
    return str(ckpt), str(cfg)


@pytest.fixture(scope='module')
def sd_folder(tmp_path_factory):
    """Tiny SD-shaped U-Net and VAE saved like a diffusers pipeline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    unet_cfg, vae_cfg = tiny_sd_configs()
    torch.manual_seed(1)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    root = tmp_path_factory.mktemp('tiny-sd')
    unet.save_pretrained(str(root / 'unet'))
    vae.save_pretrained(str(root / 'vae'))
    return str(root), unet, vae
