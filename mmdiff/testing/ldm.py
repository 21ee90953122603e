"""The ldm reference: Stable Diffusion on ldm's own code.

ldm is Stability-AI's ``ldm`` package (PyPI ``stable-diffusion-sdkit``
2.1.5: it has ``_ATTN_PRECISION`` and ``MemoryEfficientCrossAttention``), not
the CompVis commit VPD pins as a submodule; for the SD1 config the modules,
state-dict keys and fp32 numbers are the same.

ldm's ``UNetModel``, ``Encoder``/``Decoder`` and
``DiagonalGaussianDistribution`` (PyPI ``stable-diffusion-sdkit``, imported
on use) are an independent implementation of Stable Diffusion. Equivalence
tests, the converter tests and ``benchmark_backbone.py`` build seeded
SD-shaped models from them, write them in SD's single-file layout and
compare mmdiff (diffusers) against them.

ldm's ``LatentDiffusion`` needs pytorch_lightning and torchvision, so
:class:`LdmStableDiffusion` stands in for it: ldm's modules in the attribute
layout mmseg's VPD reads (``.model.diffusion_model``,
``.first_stage_model.encode(x).mode()``). Its import path
(``mmdiff.testing.ldm.LdmStableDiffusion``) is a valid
``diffusion_cfg.target`` for ldm's ``instantiate_from_config``.
"""
import copy
import math
from typing import Optional

import torch
from torch import Tensor, nn

# ldm configs (the ``params`` of SD's inference yaml): SD v1.5 and a tiny
# SD1-shaped model (cross-attention width 32) for tests.
LDM_CONFIGS = {
    'sd15': dict(
        unet=dict(image_size=64, in_channels=4, out_channels=4,
                  model_channels=320, attention_resolutions=[4, 2, 1],
                  num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8,
                  use_spatial_transformer=True, transformer_depth=1,
                  context_dim=768, legacy=False),
        vae=dict(double_z=True, z_channels=4, resolution=256, in_channels=3,
                 out_ch=3, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2,
                 attn_resolutions=[], dropout=0.0)),
    'tiny': dict(
        unet=dict(image_size=8, in_channels=4, out_channels=4,
                  model_channels=32, attention_resolutions=[4, 2, 1],
                  num_res_blocks=2, channel_mult=[1, 2, 2, 2], num_heads=4,
                  use_spatial_transformer=True, transformer_depth=1,
                  context_dim=32, legacy=False),
        vae=dict(double_z=True, z_channels=4, resolution=64, in_channels=3,
                 out_ch=3, ch=32, ch_mult=[1, 1, 2, 2], num_res_blocks=1,
                 attn_resolutions=[], dropout=0.0)),
}
TINY_UNET = LDM_CONFIGS['tiny']['unet']
TINY_DDCONFIG = LDM_CONFIGS['tiny']['vae']


def original_config(unet: Optional[dict] = None,
                    ddconfig: Optional[dict] = None) -> dict:
    """SD's inference yaml (as a dict) for ldm ``unet``/``ddconfig``
    params (default: the tiny model), what diffusers' single-file loader
    reads as ``original_config``."""
    return dict(model=dict(params=dict(
        scale_factor=0.18215,
        unet_config=dict(
            target='ldm.modules.diffusionmodules.openaimodel.UNetModel',
            params=copy.deepcopy(unet or TINY_UNET)),
        first_stage_config=dict(
            target='ldm.models.autoencoder.AutoencoderKL',
            params=dict(embed_dim=4,
                        ddconfig=copy.deepcopy(ddconfig or TINY_DDCONFIG))))))


class LdmAutoencoderKL(nn.Module):
    """ldm ``AutoencoderKL`` (same modules, keys and ``encode``) without
    pytorch_lightning.

    Args:
        ddconfig (dict, optional): ldm ``ddconfig``. Defaults to None (the
            tiny VAE).
        embed_dim (int): Latent channels. Defaults to 4.
        decoder (bool): Build the decoder (mmseg's VPD keeps it; VPD's
            released code deletes it). Defaults to True.
    """

    def __init__(self, ddconfig: Optional[dict] = None, embed_dim: int = 4,
                 decoder: bool = True) -> None:
        super().__init__()
        from ldm.modules.diffusionmodules.model import Decoder, Encoder
        ddconfig = ddconfig or TINY_DDCONFIG
        self.encoder = Encoder(**ddconfig)
        if decoder:
            self.decoder = Decoder(**ddconfig)
        self.quant_conv = nn.Conv2d(2 * ddconfig['z_channels'],
                                    2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig['z_channels'],
                                         1)

    def encode(self, x: Tensor):
        """ldm ``AutoencoderKL.encode``: the posterior distribution."""
        from ldm.modules.distributions.distributions import \
            DiagonalGaussianDistribution
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def encode_mode(self, x: Tensor) -> Tensor:
        """Posterior mode (mean), VPD's latents."""
        return self.encode(x).mode()


def ldm_unet(params: Optional[dict] = None) -> nn.Module:
    """ldm ``UNetModel`` with ``params`` (default: the tiny U-Net)."""
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    return UNetModel(**(params or TINY_UNET))


class LdmStableDiffusion(nn.Module):
    """ldm U-Net + VAE in ``LatentDiffusion``'s attribute layout.

    Args:
        unet_config (dict, optional): ldm ``UNetModel`` kwargs. Defaults to
            None (the tiny U-Net).
        ddconfig (dict, optional): ldm VAE ``ddconfig``. Defaults to None
            (the tiny VAE).
        embed_dim (int): VAE latent channels. Defaults to 4.
        ckpt (str, optional): SD single-file ``.safetensors``; every
            ``model.diffusion_model.*``/``first_stage_model.*`` key must
            match (strict). Defaults to None.
    """

    def __init__(self, unet_config: Optional[dict] = None,
                 ddconfig: Optional[dict] = None, embed_dim: int = 4,
                 ckpt: Optional[str] = None) -> None:
        super().__init__()
        self.model = nn.Module()  # ldm DiffusionWrapper layout
        self.model.diffusion_model = ldm_unet(unet_config)
        self.first_stage_model = LdmAutoencoderKL(ddconfig, embed_dim)
        if ckpt is not None:
            from safetensors.torch import load_file
            state = load_file(ckpt)
            for prefix, module in (('model.diffusion_model.',
                                    self.model.diffusion_model),
                                   ('first_stage_model.',
                                    self.first_stage_model)):
                module.load_state_dict(
                    {k[len(prefix):]: v
                     for k, v in state.items() if k.startswith(prefix)},
                    strict=True)


def randomise(module: nn.Module, generator: torch.Generator,
              perturb_norms: bool = True,
              reset_small_convs: bool = False) -> nn.Module:
    """Make every layer of a seeded model matter.

    ldm zero-initialises output convs, ``proj_out`` and biases, which would
    make layers identities and conversion keys untested.

    Args:
        module (nn.Module): Model to change in place.
        generator (torch.Generator): Source of the random values.
        perturb_norms (bool): Add noise to GroupNorm/LayerNorm/BatchNorm
            affine parameters and BatchNorm running statistics.
            Defaults to True.
        reset_small_convs (bool): First reset convs initialised with a tiny
            std (0 < std < 0.03, e.g. mmseg/VPD heads, whose outputs would
            be almost constant) to PyTorch's defaults. Defaults to False.

    Returns:
        nn.Module: ``module``.
    """
    with torch.no_grad():
        if reset_small_convs:
            for mod in module.modules():
                if isinstance(mod, (nn.Conv2d, nn.ConvTranspose2d)) and \
                        0 < mod.weight.std() < 0.03:
                    mod.reset_parameters()
        for param in module.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) *
                            0.05)
        if not perturb_norms:
            return module
        for mod in module.modules():
            if isinstance(mod, (nn.GroupNorm, nn.LayerNorm,
                                nn.BatchNorm2d)) and mod.weight is not None:
                mod.weight.add_(0.1 * torch.randn(mod.weight.shape,
                                                  generator=generator))
                mod.bias.add_(0.1 * torch.randn(mod.bias.shape,
                                                generator=generator))
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(0.1 * torch.randn(
                    mod.running_mean.shape, generator=generator))
                mod.running_var.copy_(1 + 0.2 * torch.rand(
                    mod.running_var.shape, generator=generator))
    return module


def save_single_file(model: LdmStableDiffusion, ckpt: str,
                     yaml_path: Optional[str] = None,
                     config: Optional[dict] = None) -> dict:
    """Write ``model`` in SD's single-file layout (``.safetensors``) and,
    if ``yaml_path`` is given, its inference yaml (``config``, default
    :func:`original_config` of the tiny model).

    Returns:
        dict: The state dict written (contiguous tensors).
    """
    from safetensors.torch import save_file
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, ckpt)
    if yaml_path is not None:
        import yaml
        with open(yaml_path, 'w') as f:
            yaml.safe_dump(config or original_config(), f)
    return state


def lit_ema_copy(unet: nn.Module, generator: torch.Generator,
                 scale: float = 0.01) -> dict:
    """ldm ``LitEma``'s copy of ``unet`` as a full SD training file stores
    it (``model_ema.*`` beside ``model.diffusion_model.*``; ldm builds it
    from ``LatentDiffusion.model``, the wrapper holding ``diffusion_model``),
    made by ldm's own ``LitEma``; each value moved by ``scale`` x N(0, 1) so
    that the EMA and the raw weights differ.

    Returns:
        dict: ``model_ema.<name without dots>`` tensors, ``decay`` and
        ``num_updates`` included.
    """
    from ldm.modules.ema import LitEma
    wrapper = nn.Module()  # ldm DiffusionWrapper layout
    wrapper.diffusion_model = unet
    shadow = LitEma(wrapper).state_dict()
    with torch.no_grad():
        for name, value in shadow.items():
            if value.is_floating_point() and value.ndim:
                value.add_(scale * torch.randn(value.shape,
                                               generator=generator))
    return {f'model_ema.{k}': v for k, v in shadow.items()}


def cross_attention_probs(module: nn.Module, x: Tensor,
                          context: Tensor) -> Tensor:
    """Head-averaged ``softmax(QK^T * scale)`` of an ldm ``CrossAttention``
    (``attn2``) on its inputs, ``(B, Nq, K)``: the maps VPD collects."""
    heads = module.heads
    q, k = module.to_q(x), module.to_k(context)
    q, k = (t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)
            for t in (q, k))  # 'b n (h d) -> b h n d'
    probs = (q @ k.transpose(-1, -2) * module.scale).softmax(-1)
    return probs.mean(1)


def maps_by_size(probs_by_queries: dict) -> dict:
    """``{Nq: [probs (B, Nq, K), ...]}`` -> ``{side: (B, K, side, side)}``,
    layers averaged (square latents)."""
    out = {}
    for num_queries, probs in probs_by_queries.items():
        side = int(math.sqrt(num_queries))
        mean = torch.stack(probs).mean(0)
        out[side] = mean.transpose(1, 2).reshape(mean.shape[0], -1, side,
                                                 side)
    return out
