"""Shared tiny components: an SD1-shaped ldm model written as a single file.

ldm's ``UNetModel``/``Encoder``/``Decoder`` (PyPI ``stable-diffusion-sdkit``)
are an independent implementation of Stable Diffusion; random weights in
SD's original key layout exercise diffusers' single-file conversion.
"""
import copy

import pytest
import torch
from torch import nn

from mmdiff.models.diffusion import tiny_sd_configs

LDM_UNET = dict(
    image_size=8, in_channels=4, out_channels=4, model_channels=32,
    attention_resolutions=[4, 2, 1], num_res_blocks=2,
    channel_mult=[1, 2, 2, 2], num_heads=4, use_spatial_transformer=True,
    transformer_depth=1, context_dim=32, legacy=False)
LDM_DDCONFIG = dict(
    double_z=True, z_channels=4, resolution=64, in_channels=3, out_ch=3,
    ch=32, ch_mult=[1, 1, 2, 2], num_res_blocks=1, attn_resolutions=[],
    dropout=0.0)
ORIGINAL_CONFIG = dict(model=dict(params=dict(
    scale_factor=0.18215,
    unet_config=dict(
        target='ldm.modules.diffusionmodules.openaimodel.UNetModel',
        params=LDM_UNET),
    first_stage_config=dict(
        target='ldm.models.autoencoder.AutoencoderKL',
        params=dict(embed_dim=4, ddconfig=LDM_DDCONFIG)))))


class LdmVae(nn.Module):
    """ldm ``AutoencoderKL`` without pytorch_lightning (same key names)."""

    def __init__(self) -> None:
        super().__init__()
        from ldm.modules.diffusionmodules.model import Decoder, Encoder
        self.encoder = Encoder(**LDM_DDCONFIG)
        self.decoder = Decoder(**LDM_DDCONFIG)
        z, embed = LDM_DDCONFIG['z_channels'], 4
        self.quant_conv = nn.Conv2d(2 * z, 2 * embed, 1)
        self.post_quant_conv = nn.Conv2d(embed, z, 1)

    def encode_mode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mode (mean) of ldm's DiagonalGaussianDistribution."""
        from ldm.modules.distributions.distributions import \
            DiagonalGaussianDistribution
        moments = self.quant_conv(self.encoder(x))
        return DiagonalGaussianDistribution(moments).mode()


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Keep PyTorch's default init, but fill the parameters ldm zero-inits
    (output convs, ``proj_out``, biases) and perturb the norms, so that no
    layer is an identity and every key of the conversion matters."""
    with torch.no_grad():
        for param in module.parameters():
            noise = torch.randn(param.shape, generator=generator)
            if not param.any():
                param.copy_(noise * 0.05)
        for mod in module.modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)):
                mod.weight.add_(0.1 * torch.randn(
                    mod.weight.shape, generator=generator))
                mod.bias.add_(0.1 * torch.randn(
                    mod.bias.shape, generator=generator))


@pytest.fixture(scope='session')
def ldm_models():
    """Seeded tiny ldm U-Net and VAE in eval mode."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    gen = torch.Generator().manual_seed(0)
    unet = UNetModel(**LDM_UNET).eval()
    vae = LdmVae().eval()
    _randomise(unet, gen)
    _randomise(vae, gen)
    return unet, vae


@pytest.fixture(scope='session')
def single_file_ckpt(ldm_models, tmp_path_factory):
    """Paths of an SD-layout ``.safetensors`` and its ldm yaml."""
    import yaml
    from safetensors.torch import save_file
    unet, vae = ldm_models
    state = {f'model.diffusion_model.{k}': v.contiguous()
             for k, v in unet.state_dict().items()}
    state.update({f'first_stage_model.{k}': v.contiguous()
                  for k, v in vae.state_dict().items()})
    root = tmp_path_factory.mktemp('sd_single_file')
    ckpt, cfg = root / 'tiny_sd.safetensors', root / 'tiny_sd.yaml'
    save_file(state, str(ckpt))
    cfg.write_text(yaml.safe_dump(copy.deepcopy(ORIGINAL_CONFIG)))
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
