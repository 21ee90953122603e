"""DiffusionPretrainer: objective, weighting, learning, export round trip.

The references are the formulas of the sources, computed here from the
scheduler's ``alphas_cumprod``: the forward process and the velocity of
Salimans & Ho 2022 (v = sqrt(a) eps - sqrt(1 - a) x0), the min-SNR-gamma
weights of Hang et al. 2023 (SNR = a / (1 - a); min(SNR, gamma) / SNR for
epsilon, / (SNR + 1) for v).
"""
import json
import os.path as osp

import pytest
import torch

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.models.pretrainers import DiffusionPretrainer
from mmdiff.models.pretrainers.export import export_diffusers

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py


def _small_unet() -> dict:
    return tiny_unet_cfg()


def make(**kwargs) -> DiffusionPretrainer:
    torch.manual_seed(0)
    kwargs.setdefault('unet_cfg', _small_unet())
    kwargs.setdefault('vae_cfg', tiny_vae_cfg())
    model = DiffusionPretrainer(**kwargs)
    model.init_weights()
    return model


def images(n: int = 2, size: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth images (a random VAE keeps them apart)
    low = torch.rand(n, 3, size // 16, size // 16, generator=g)
    return torch.nn.functional.interpolate(low, size=size,
                                           mode='bilinear') * 2 - 1


@pytest.mark.parametrize('prediction_type', ['epsilon', 'v_prediction'])
def test_targets_and_min_snr_weights_follow_the_papers(prediction_type):
    model = make(prediction_type=prediction_type, snr_gamma=5.0)
    a = model.scheduler.alphas_cumprod.double()
    t = torch.tensor([0, 10, 250, 500, 999])
    x0 = torch.randn(5, 4, 8, 8, dtype=torch.float64)
    eps = torch.randn_like(x0)
    at = a[t].view(-1, 1, 1, 1)
    target = model.target(x0.float(), eps.float(), t).double()
    want = eps if prediction_type == 'epsilon' else \
        at.sqrt() * eps - (1 - at).sqrt() * x0
    torch.testing.assert_close(target, want, rtol=1e-5, atol=1e-5)
    snr = a[t] / (1 - a[t])
    w = torch.minimum(snr, torch.full_like(snr, 5.0))
    w = w / snr if prediction_type == 'epsilon' else w / (snr + 1)
    torch.testing.assert_close(model.loss_weights(t).double(), w,
                               rtol=1e-5, atol=1e-7)
    assert make().loss_weights(t) is None  # plain MSE without snr_gamma


def test_loss_is_weighted_mse_of_the_prediction():
    """Recompute one loss by hand from the same random draws."""
    model = make(snr_gamma=5.0)
    x = images()
    torch.manual_seed(3)
    out = model.loss(x)
    torch.manual_seed(3)
    post = model.vae.encode(x).latent_dist
    lat = post.sample() * model.vae.config.scaling_factor
    noise = torch.randn_like(lat)
    t = torch.randint(0, 1000, (2, ))
    a = model.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    noisy = a.sqrt() * lat + (1 - a).sqrt() * noise
    with torch.no_grad():
        pred = model.unet(noisy, t, encoder_hidden_states=torch.zeros(
            2, 1, 32)).sample
    mse = ((pred - noise)**2).mean(dim=(1, 2, 3))
    snr = a.flatten() / (1 - a.flatten())
    want = (mse * torch.clamp(snr, max=5.0) / snr).mean()
    torch.testing.assert_close(out['loss'].detach(), want, rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(out['mse'], mse.mean(), rtol=1e-4,
                               atol=1e-6)


def _eval_loss(model, x, seeds=(11, 12, 13, 14)) -> float:
    """Loss on fixed draws (same noise and timesteps each call)."""
    with torch.no_grad():
        total = 0.
        for s in seeds:
            torch.manual_seed(s)
            total += model.loss(x)['mse'].item()
    return total / len(seeds)


@pytest.mark.parametrize('kwargs', [
    dict(), dict(prediction_type='v_prediction', snr_gamma=5.0),
    dict(conditioning='class', num_classes=2)])
def test_loss_decreases_on_a_tiny_set(kwargs):
    model = make(**kwargs)
    x = images(4)
    samples = None
    if kwargs.get('conditioning') == 'class':
        from mmengine.structures import BaseDataElement
        samples = [BaseDataElement(metainfo=dict(class_id=i % 2))
                   for i in range(4)]
    before = _eval_loss(model, x) if samples is None else None
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=2e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model.loss(x, samples)
        optim.zero_grad()
        loss['loss'].backward()
        optim.step()
        losses.append(loss['mse'].item())
    if samples is None:
        after = _eval_loss(model, x)
        assert after < 0.7 * before, (before, after)
    else:  # the class tokens trained too
        assert model.class_embed.weight.grad is not None
        assert sum(losses[-8:]) < 0.7 * sum(losses[:8]), losses
    assert all(p.grad is None for p in model.vae.parameters())


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match='prediction_type'):
        make(prediction_type='sample')
    with pytest.raises(ValueError, match='num_classes'):
        make(conditioning='class')
    with pytest.raises(RuntimeError, match='val_dataloader'):
        make()(images(), mode='predict')
    sdxl = dict(_small_unet(), addition_embed_type='text_time',
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=80)
    with pytest.raises(ValueError, match='SDXL'):
        make(unet_cfg=sdxl)


def _unet_out(unet, lat, t):
    with torch.no_grad():
        return unet(lat, t, encoder_hidden_states=torch.zeros(
            lat.shape[0], 1, 32)).sample


@pytest.mark.parametrize('lora', [None, dict(rank=4)])
def test_export_round_trips_through_pretrained(tmp_path, lora):
    model = make(lora=lora, scaling_factor=0.5)
    optim = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # move the weights (LoRA: adapters leave identity)
        optim.zero_grad()
        model.loss(images())['loss'].backward()
        optim.step()
    out = export_diffusers(model, str(tmp_path / 'sd'))
    assert sorted(p.name for p in (tmp_path / 'sd').iterdir()) == [
        'mmdiff_pretrain.json', 'scheduler', 'unet', 'vae']
    backbone = DiffusionBackbone(pretrained=out, scale_latents=True,
                                 local_files_only=True)
    backbone.init_weights()
    lat = torch.randn(2, 4, 8, 8)
    t = torch.tensor([1, 500])
    got, want = _unet_out(backbone.unet, lat, t), _unet_out(model.unet, lat,
                                                            t)
    if lora is None:
        assert torch.equal(got, want)
        # the U-Net file alone, as unet_weights= of a backbone
        other = DiffusionBackbone(
            unet_cfg=dict(model.unet.config), vae_cfg=tiny_vae_cfg(),
            unet_weights=osp.join(out, 'unet',
                                  'diffusion_pytorch_model.safetensors'))
        other.init_weights()
        assert torch.equal(_unet_out(other.unet, lat, t), want)
    else:  # merged adapters: same function, other rounding
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # the VAE (encoder and scale) the features are computed from
    x = images()
    assert backbone.vae.config.scaling_factor == 0.5
    torch.testing.assert_close(
        backbone.encode(x),
        model.vae.encode(x).latent_dist.mode() * 0.5)
    feats = backbone(x)
    assert [f.shape[1] for f in feats] == list(backbone.out_channels)
    info = json.loads((tmp_path / 'sd' / 'mmdiff_pretrain.json').read_text())
    assert info['lora_merged'] == (lora is not None)
    # a second export replaces the folder whole, no temp folder left (the
    # lock file of utils.fileio.publish_folder stays)
    export_diffusers(model, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.sd.lock', 'sd']


def test_samples_leave_the_global_rng_alone():
    model = make()
    torch.manual_seed(5)
    a = torch.rand(3)
    torch.manual_seed(5)
    imgs = model.sample(2, (8, 8), steps=2)
    assert torch.equal(torch.rand(3), a)
    assert imgs.shape == (2, 3, 64, 64) and imgs.abs().max() <= 1
    assert torch.equal(imgs, model.sample(2, (8, 8), steps=2))
