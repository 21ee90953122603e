"""One Stable Diffusion core: what every mmdiff model on an SD U-Net + VAE
does the same way.

:class:`SDCore` is mixed into :class:`~mmdiff.models.backbones.\
DiffusionBackbone` (features), :class:`~mmdiff.models.pretrainers.\
DiffusionPretrainer` (denoising training) and ``projects/GenerativeDepth``
(one-step latent prediction). It builds the U-Net and the VAE from configs or
a ``pretrained`` source (folder, hub id, single file) and reads their weights
in one sequence (``pretrained`` -> ``unet_weights`` -> ``vae_weights``),
adds LoRA, trims and freezes the VAE, encodes and decodes, keeps the noise
scheduler (the model folder's when it has one, else SD's training schedule),
the cross-attention width, one size-divisor rule and the autocast. The U-Net
and the VAE stay the host model's own children (``unet.*``, ``vae.*`` in its
state dict).
"""
import contextlib
import os.path as osp
from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from .loading import (load_diffusion_configs, load_diffusion_weights,
                      load_unet_weights, load_vae_weights, source_kind)
from .lora import add_unet_lora, check_lora_cfg

#: Stable Diffusion 1.x/2.x/XL training noise schedule (DDPM,
#: ``scaled_linear`` betas 0.00085-0.012, 1000 steps), for models whose
#: source carries no scheduler config.
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085,
                    beta_end=0.012, beta_schedule='scaled_linear',
                    clip_sample=False)
LATENT_MODES = ('mode', 'sample')
AMP_DTYPES = (None, 'bfloat16', 'float16')
#: VAE parts a feature extractor never runs (not built, not loaded).
DECODER_PREFIXES = ('decoder.', 'post_quant_conv.')


def check_choice(name: str, value, allowed: Sequence) -> None:
    """Refuse ``value`` outside ``allowed``, naming both."""
    if value not in allowed:
        raise ValueError(f'{name} must be one of {list(allowed)}, got '
                         f'{value!r}.')


def cross_attention_width(unet_config) -> int:
    """The U-Net's ``cross_attention_dim`` (the first, if per block)."""
    dim = unet_config['cross_attention_dim']
    return int(dim if isinstance(dim, int) else dim[0])


def sd_scheduler(pretrained: Optional[str] = None,
                 local_files_only: bool = False, **overrides):
    """A ``DDPMScheduler``: the ``scheduler/`` config of a diffusers folder
    (or hub id) when it has one, else :data:`SD_SCHEDULER`; ``overrides``
    (e.g. ``prediction_type``) win over both."""
    from diffusers import DDPMScheduler
    config = dict(SD_SCHEDULER)
    kind = source_kind(pretrained)
    folder_cfg = kind == 'folder' and osp.isfile(
        osp.join(osp.expanduser(pretrained), 'scheduler',
                 'scheduler_config.json'))
    if folder_cfg or kind == 'hub':
        try:
            config = DDPMScheduler.load_config(
                pretrained, subfolder='scheduler',
                local_files_only=local_files_only)
        except (OSError, ValueError):
            if folder_cfg:  # a config that is there must be readable
                raise
    return DDPMScheduler.from_config(config, **overrides)


def vae_encode(vae, images: Tensor, latent_mode: str = 'mode',
               scale: bool = False) -> Tensor:
    """Latents of images in [-1, 1]: the posterior's mode or a sample,
    times the VAE's ``scaling_factor`` with ``scale`` (gradients as the
    caller's grad mode). A deterministic encoder (Sana's
    ``AutoencoderDC``: ``.latent``, no posterior) gives its latents for
    either mode."""
    param = next(vae.parameters())
    out = vae.encode(images.to(param.dtype))
    if hasattr(out, 'latent_dist'):
        dist = out.latent_dist
        latents = dist.mode() if latent_mode == 'mode' else dist.sample()
    else:
        latents = out.latent
    return latents * vae.config.scaling_factor if scale else latents


def vae_decode(vae, latents: Tensor, scale: bool = False) -> Tensor:
    """Images of latents (divided by ``scaling_factor`` first with
    ``scale``)."""
    if scale:
        latents = latents / vae.config.scaling_factor
    return vae.decode(latents).sample


class SDCore:
    """The Stable Diffusion parts of an ``nn.Module`` (a mixin).

    :meth:`build_sd` (called in the host's ``__init__``) sets ``unet``,
    ``vae``, ``scheduler`` and the attributes below; :meth:`load_sd_weights`
    (from the host's ``init_weights``) reads the weights; :meth:`freeze_sd`
    (from ``__init__`` and ``train``) keeps the frozen parts frozen.

    Attributes:
        cross_attention_dim (int): Width of the U-Net's conditioning tokens.
        vae_factor (int): Image pixels per latent pixel (SD: 8).
        unet_factor (int): Latent pixels per pixel of the U-Net's coarsest
            level (its down-samplers; SD: 8).
        size_divisor (int): ``vae_factor * unet_factor``: image sides the
            U-Net takes without padding.
        in_channels (int): Image channels of the VAE.
        latent_channels (int): Latent channels of the VAE.
    """

    def build_sd(self,
                 pretrained: Optional[str] = None,
                 unet_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 original_config: Optional[Union[str, dict]] = None,
                 local_files_only: bool = False,
                 unet_weights: Optional[str] = None,
                 vae_weights: Optional[str] = None,
                 decoder: bool = False,
                 lora: Optional[dict] = None,
                 freeze_unet: bool = False,
                 freeze_vae: bool = True,
                 grad_checkpointing: bool = False,
                 latent_mode: str = 'mode',
                 scale_latents: bool = False,
                 amp_dtype: Optional[str] = None,
                 scheduler: Optional[dict] = None,
                 check_unet=None) -> None:
        """Build U-Net, VAE and scheduler (weights: :meth:`load_sd_weights`).

        Args:
            pretrained (str, optional): Diffusers folder, hub id, or original
                single-file ``.ckpt``/``.safetensors``; None builds random
                weights from ``unet_cfg``/``vae_cfg``.
            unet_cfg, vae_cfg (dict, optional): ``UNet2DConditionModel`` /
                ``AutoencoderKL`` configs when ``pretrained`` is None.
            original_config (str | dict, optional): ldm yaml of a single
                file.
            local_files_only (bool): Never touch the network.
            unet_weights (str, optional): A U-Net state dict file loaded
                after ``pretrained`` (a drop-in U-Net).
            vae_weights (str, optional): A stand-alone ``AutoencoderKL``
                folder or hub id loaded after ``pretrained``.
            decoder (bool): Keep the VAE decoder (sampling, decoding); False
                drops it (never built, never read).
            lora (dict, optional): LoRA on the U-Net
                (:func:`~mmdiff.models.diffusion.lora.add_unet_lora` keys).
            freeze_unet (bool): Freeze the U-Net.
            freeze_vae (bool): Freeze the VAE (no gradient, eval).
            grad_checkpointing (bool): diffusers gradient checkpointing.
            latent_mode (str): ``'mode'`` or ``'sample'`` of the posterior.
            scale_latents (bool): Multiply latents by the VAE's
                ``scaling_factor`` (and divide before decoding).
            amp_dtype (str, optional): ``'bfloat16'``/``'float16'``
                autocast of :meth:`autocast`.
            scheduler (dict, optional): ``DDPMScheduler`` arguments over the
                source's (or SD's) schedule.
            check_unet (callable, optional): Called with the U-Net config
                before anything is built (the host's own refusals).
        """
        from diffusers import AutoencoderKL, UNet2DConditionModel
        check_choice('latent_mode', latent_mode, LATENT_MODES)
        check_choice('amp_dtype', amp_dtype, AMP_DTYPES)
        self.pretrained = pretrained
        self.original_config = original_config
        self.local_files_only = local_files_only
        self.unet_weights = unet_weights
        self.vae_weights = vae_weights
        self.latent_mode = latent_mode
        self.scale_latents = scale_latents
        self.amp_dtype = amp_dtype
        self.freeze_unet = freeze_unet
        self.freeze_vae = freeze_vae
        self.lora = check_lora_cfg(lora, freeze_unet)
        self.vae_ignore = () if decoder else DECODER_PREFIXES

        unet_config, vae_config = load_diffusion_configs(
            pretrained, unet_cfg, vae_cfg, original_config, local_files_only)
        if check_unet is not None:
            check_unet(unet_config)
        self.unet = UNet2DConditionModel.from_config(unet_config)
        if self.lora is not None:  # before the host lists its parameters
            add_unet_lora(self.unet, **self.lora)
        vae = AutoencoderKL.from_config(vae_config)
        if not decoder:
            vae.decoder = None
            vae.post_quant_conv = None
        self.vae = vae
        if grad_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self.scheduler = sd_scheduler(pretrained, local_files_only,
                                      **(scheduler or {}))

        self.in_channels = int(self.vae.config.in_channels)
        self.latent_channels = int(self.vae.config.latent_channels)
        self.cross_attention_dim = cross_attention_width(self.unet.config)
        self.vae_factor = 2**(len(self.vae.config.block_out_channels) - 1)
        self.unet_factor = 2**sum(
            1 for b in self.unet.down_blocks
            if getattr(b, 'downsamplers', None))
        self.size_divisor = self.vae_factor * self.unet_factor

    def load_sd_weights(self) -> None:
        """Read ``pretrained``, then ``unet_weights``, then ``vae_weights``
        into the built modules (each checked: complete, finite)."""
        if self.pretrained is not None:
            load_diffusion_weights(self.unet, self.vae, self.pretrained,
                                   self.original_config,
                                   self.local_files_only,
                                   vae_ignore=self.vae_ignore)
        if self.unet_weights is not None:
            load_unet_weights(self.unet, self.unet_weights)
        if self.vae_weights is not None:
            load_vae_weights(self.vae, self.vae_weights,
                             self.local_files_only,
                             vae_ignore=self.vae_ignore)

    def freeze_sd(self) -> None:
        """The VAE (``freeze_vae``) and the U-Net (``freeze_unet``) without
        gradients and in eval."""
        frozen = ([self.vae] if self.freeze_vae else []) + (
            [self.unet] if self.freeze_unet else [])
        for module in frozen:
            module.eval()
            module.requires_grad_(False)

    @property
    def scaling_factor(self) -> float:
        """The latent scale (the VAE config's ``scaling_factor``)."""
        return float(self.vae.config.scaling_factor)

    def autocast(self, device_type: str):
        """``torch.autocast`` to ``amp_dtype``, or a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type,
                              dtype=getattr(torch, self.amp_dtype))

    def encode(self, images: Tensor) -> Tensor:
        """VAE latents of images in [-1, 1] (posterior ``latent_mode``,
        times ``scaling_factor`` with ``scale_latents``); no gradient while
        the VAE is frozen.

        Args:
            images (Tensor): ``(B, C, H, W)``, H and W multiples of
                ``vae_factor``.

        Returns:
            Tensor: ``(B, latent_channels, H / vae_factor, W / vae_factor)``.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.freeze_vae):
            return vae_encode(self.vae, images, self.latent_mode,
                              self.scale_latents)

    def decode(self, latents: Tensor) -> Tensor:
        """Images of latents (the inverse scale of :meth:`encode` first);
        gradients flow to ``latents``."""
        if self.vae.decoder is None:
            raise RuntimeError(
                f'{type(self).__name__} built its VAE without the decoder '
                '(features need only the encoder): nothing to decode with.')
        return vae_decode(self.vae, latents, self.scale_latents)
