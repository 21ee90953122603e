"""A generic feature backbone on a diffusers Stable Diffusion U-Net + VAE.

Data path: image in [-1, 1] -> pad to the U-Net multiple -> frozen VAE
encoder (posterior mode/sample) -> optional latent scaling and noise ->
U-Net at a fixed timestep, conditioned by ``condition()`` -> features tapped
inside the U-Net (+ cross-attention maps) -> cropped back -> tuple.

The pieces live by concern: argument/image checks and padding in
``backbones/inputs.py``; probing and map processors in
``diffusion/probe.py``; noise in ``diffusion/noise.py``; SDXL added
conditioning in ``diffusion/added_cond.py``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdiff.models.attention import AttentionStore
from mmdiff.models.diffusion import (FeatureTaps, TapsDone,
                                     load_diffusion_configs,
                                     load_diffusion_weights,
                                     load_unet_weights, load_vae_weights,
                                     vpd_default_taps)
from mmdiff.models.diffusion.added_cond import (added_cond_kwargs,
                                                pooled_text_embeds)
from mmdiff.models.diffusion.frozen import encode_latents, freeze
from mmdiff.models.diffusion.lora import add_unet_lora, check_lora_cfg
from mmdiff.models.diffusion.noise import add_noise, sd_noise_scheduler
from mmdiff.models.diffusion.probe import probe_unet
from mmdiff.models.diffusion.vae_taps import (probe_vae_taps,
                                              vae_feature_taps, vae_tap_paths)
from mmdiff.registry import MODELS
from .inputs import (as_pad_shape, autocast_context, check_backbone_args,
                     check_images, crop, pad_images)


class _FinishBuild(type(BaseModule)):
    """Calls :meth:`DiffusionBackbone.finish_build` once the most derived
    ``__init__`` has returned (a post-init hook for subclasses)."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        obj.finish_build()
        return obj


@MODELS.register_module()
class DiffusionBackbone(BaseModule, metaclass=_FinishBuild):
    """Multi-scale features from a Stable Diffusion U-Net (VPD-style).

    Conditioning here is a null prompt (one all-zero token); subclasses such
    as :class:`VPD` override :meth:`condition`.

    :meth:`forward` is a template method: it checks and pads the images,
    enters ``torch.autocast`` (``amp_dtype``), encodes them with the VAE,
    asks :meth:`condition` for the encoder hidden states, calls
    :meth:`extract` and returns its features in the input's dtype. The
    public extension points, all run under the autocast, are:

    * :meth:`condition`: the conditioning tokens ``(B, N, D)``;
    * :meth:`extract`: latents -> features (default: noise, one U-Net pass
      through :meth:`run_unet`, :meth:`tap_outputs`); override it for
      several passes or post-processing, built from :meth:`add_noise`,
      :meth:`run_unet` and :meth:`tap_outputs`;
    * :meth:`reduce_maps`: attention maps -> output channels;
    * :attr:`num_tokens` and :meth:`output_channels`: what the above do to
      the channel counts; :meth:`finish_build` for checks that need the
      whole object.

    ``feature_info``/``out_channels`` are computed once, from
    :meth:`output_channels`, on first use or after the most derived
    ``__init__`` has returned (whichever comes first), never from the base
    ``__init__``: a subclass may use them in its own ``__init__`` once the
    state its :attr:`num_tokens` reads is set.

    Args:
        pretrained (str, optional): Diffusers folder, hub id, or original
            single-file ``.ckpt``/``.safetensors``. Weights are read in
            :meth:`init_weights`. None builds random weights from
            ``unet_cfg``/``vae_cfg``. Defaults to None.
        unet_cfg (dict, optional): ``UNet2DConditionModel`` config used when
            ``pretrained`` is None. Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config used when
            ``pretrained`` is None. Defaults to None.
        original_config (str | dict, optional): ldm yaml (path or dict) of a
            single-file checkpoint. Defaults to None (diffusers infers the
            model type and fetches its config, from the Hub or HF cache).
        local_files_only (bool): Never touch the network. Defaults to False.
        unet_weights (str, optional): A U-Net state dict file (diffusers
            layout, same architecture) loaded after ``pretrained``, as a
            drop-in U-Net, e.g. CleanDIFT's noise-free fine-tuned SD 2.1
            U-Net (use it with ``noise='none'``; see
            ``projects/sd2_sdxl/README.md`` for the timestep).
            Defaults to None.
        vae_weights (str, optional): A stand-alone ``AutoencoderKL``
            (diffusers folder or hub id, same architecture) loaded after
            ``pretrained`` as the VAE, e.g. ``stabilityai/sd-vae-ft-mse``,
            or the demos' pretrained tiny VAE. Defaults to None.
        text_embeds (str | Tensor | dict, optional): SDXL (``text_time``
            U-Nets) only: the pooled prompt embedding given as
            ``added_cond_kwargs['text_embeds']`` to every image. None:
            zeros; a tensor or file ``(1280, )``; ``dict(learnable=True)``.
            Defaults to None.
        time_ids (str | Sequence[float]): SDXL only: micro-conditioning
            ``(orig_h, orig_w, crop_top, crop_left, target_h, target_w)``.
            ``'input_size'`` uses the padded input's size, uncropped; or a
            fixed sequence. Defaults to 'input_size'.
        taps (Sequence[str], optional): U-Net module paths whose outputs are
            returned, in this order. Defaults to None: VPD's four (ldm output
            blocks 1, 4, 7 and final), finest first.
        use_attn (bool): Concatenate cross-attention maps to the taps of
            matching resolution. Defaults to False.
        attn_grad (bool): Let gradients flow through the maps (in VPD's
            released code they carry none: ldm's gradient checkpointing
            runs the blocks that store them under no_grad). Defaults to
            False.
        attn_places (Sequence[str]): Where maps are collected: any of
            ``'down'``, ``'mid'``, ``'up'``. Defaults to ('down', 'up').
        attn_min_downsample (int): Keep maps whose resolution is at most the
            latent's divided by this (VPD: 2, i.e. 1/16 and 1/32 of the
            image for SD). Defaults to 2.
        vae_taps (Sequence[int | str]): Extra, finer pyramid levels from the
            VAE encoder, returned in this order in front of the U-Net taps:
            an int ``i`` is the output of ``vae.encoder.down_blocks[i]``
            (SD's VAE: 0 = 128 channels at stride 2, 1 = 256 at stride 4),
            a str any module path of ``vae.encoder``. Recorded during the
            encoder pass that makes the latents (no second pass); no
            gradient while the VAE is frozen. Defaults to () (none).
        freeze_vae (bool): Keep the VAE encoder frozen and in eval (VPD).
            False trains it, through the latents and the ``vae_taps``.
            Defaults to True.
        timestep (int): Diffusion timestep given to the U-Net. Defaults to 1.
        scale_latents (bool): Multiply latents by the VAE's
            ``scaling_factor`` (VPD: no). Defaults to False.
        latent_mode (str): ``'mode'`` or ``'sample'`` of the VAE posterior.
            Defaults to 'mode'.
        noise (str): ``'none'``, ``'seeded'`` (same noise every forward) or
            ``'random'``; added with SD's DDPM schedule at ``timestep``.
            Defaults to 'none'.
        noise_seed (int): Seed of ``'seeded'`` noise. Defaults to 0.
        freeze_unet (bool): Freeze the U-Net (no grad, eval). Defaults to
            False.
        grad_checkpointing (bool): diffusers gradient checkpointing in the
            U-Net. Defaults to False.
        amp_dtype (str, optional): ``'bfloat16'`` or ``'float16'``: run the
            VAE encoder and the U-Net under ``torch.autocast`` on the input's
            device, features returned in the input's dtype. For CPUs, where
            mmengine's ``AmpOptimWrapper`` refuses to run (on GPUs use it
            instead). Defaults to None (no autocast).
        lora (dict, optional): LoRA fine-tuning of the U-Net (peft): its
            weights are frozen and low-rank adapters on the attention
            projections are trained. Keys of
            :func:`~mmdiff.models.diffusion.lora.add_unet_lora`: ``rank``
            (default 8), ``alpha``, ``dropout``, ``target_modules``, e.g.
            ``dict(rank=8)``. Pretrained weights load into the wrapped
            layers; adapters start as the identity. Not with
            ``freeze_unet``. Defaults to None (no LoRA).
        pad_shape (int | Sequence[int], optional): mmseg-VPD padding: pad
            inputs (bottom/right) to at least this ``(h, w)`` and return the
            features of the padded image, uncropped (VPD's NYU setting: 480
            crops padded to 512, the head's ``fmap_border`` trims). None:
            pad to the U-Net multiple and crop features back to
            ``ceil(H / stride)``. Defaults to None.
        pad_val (float): Padding value, in normalised units. Defaults to 0.
        init_cfg (dict | list[dict], optional): mmengine init config, applied
            after the pretrained SD weights. Defaults to None.
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 unet_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 original_config: Optional[Union[str, dict]] = None,
                 local_files_only: bool = False,
                 unet_weights: Optional[str] = None,
                 vae_weights: Optional[str] = None,
                 text_embeds: Optional[Union[str, Tensor, dict]] = None,
                 time_ids: Union[str, Sequence[float]] = 'input_size',
                 taps: Optional[Sequence[str]] = None,
                 use_attn: bool = False,
                 attn_grad: bool = False,
                 attn_places: Sequence[str] = ('down', 'up'),
                 attn_min_downsample: int = 2,
                 vae_taps: Sequence[Union[int, str]] = (),
                 freeze_vae: bool = True,
                 timestep: int = 1,
                 scale_latents: bool = False,
                 latent_mode: str = 'mode',
                 noise: str = 'none',
                 noise_seed: int = 0,
                 freeze_unet: bool = False,
                 grad_checkpointing: bool = False,
                 amp_dtype: Optional[str] = None,
                 lora: Optional[dict] = None,
                 pad_shape: Optional[Union[int, Sequence[int]]] = None,
                 pad_val: float = 0.,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        from diffusers import AutoencoderKL, UNet2DConditionModel
        check_backbone_args(latent_mode, amp_dtype)
        self.scheduler = sd_noise_scheduler(noise)
        self.pretrained = pretrained
        self.original_config = original_config
        self.local_files_only = local_files_only
        self.unet_weights = unet_weights
        self.vae_weights = vae_weights
        self.use_attn = use_attn
        self.attn_grad = attn_grad
        self.timestep = timestep
        self.scale_latents = scale_latents
        self.latent_mode = latent_mode
        self.noise = noise
        self.noise_seed = noise_seed
        self.freeze_unet = freeze_unet
        self.freeze_vae = freeze_vae
        self.amp_dtype = amp_dtype
        self.lora = check_lora_cfg(lora, freeze_unet)
        self.pad_shape = as_pad_shape(pad_shape)
        self.pad_val = pad_val
        self._feature_info: Optional[List[dict]] = None

        unet_config, vae_config = load_diffusion_configs(
            pretrained, unet_cfg, vae_cfg, original_config, local_files_only)
        self.unet = UNet2DConditionModel.from_config(unet_config)
        if self.lora is not None:  # before probing, which lists the params
            add_unet_lora(self.unet, **self.lora)  # to keep frozen by name
        vae = AutoencoderKL.from_config(vae_config)
        vae.decoder = None  # never used: features come from the encoder
        vae.post_quant_conv = None
        self.vae = vae

        self.in_channels = self.vae.config.in_channels
        cross_dim = self.unet.config.cross_attention_dim
        self.cross_attention_dim = int(cross_dim if isinstance(cross_dim, int)
                                       else cross_dim[0])
        self.vae_factor = 2**(len(self.vae.config.block_out_channels) - 1)
        self.unet_factor = 2**sum(
            1 for b in self.unet.down_blocks
            if getattr(b, 'downsamplers', None))
        self.size_divisor = self.vae_factor * self.unet_factor
        self.vae_tap_paths = vae_tap_paths(self.vae.encoder, vae_taps)
        self.vae_taps = vae_feature_taps(self.vae.encoder, self.vae_tap_paths)
        self.vae_tap_channels, self.vae_tap_strides = probe_vae_taps(
            self.vae.encoder, self.vae_taps, self.in_channels,
            self.vae_factor)
        self.time_ids = time_ids
        pooled = pooled_text_embeds(self.unet.config, text_embeds, time_ids)
        if isinstance(pooled, torch.nn.Parameter) or pooled is None:
            self.pooled_text_embeds = pooled
        else:
            self.register_buffer('pooled_text_embeds', pooled)

        self.tap_paths = list(taps) if taps else vpd_default_taps(self.unet)
        self.taps = FeatureTaps(self.unet, self.tap_paths)
        self.attn_store = AttentionStore(detach=not attn_grad)
        self.attn_places = tuple(attn_places)
        self.attn_min_downsample = attn_min_downsample
        probe = probe_unet(
            self.unet, self.taps, self.attn_store, self.run_unet,
            self.cross_attention_dim, self.vae_factor, self.unet_factor,
            use_attn, self.attn_places, attn_min_downsample)
        self.tap_channels = probe.tap_channels
        self.tap_strides = probe.tap_strides
        self.attn_layers = probe.attn_layers
        self.attn_downsamples = probe.attn_downsamples
        self.unused_unet_params = probe.unused_params
        if grad_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self._freeze_stages()

    # ------------------------------------------------------------------
    # Channels and feature info
    # ------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        """Tokens in the conditioning (= channels of each attention map).

        Override it with :meth:`condition`; it is read only after the most
        derived ``__init__`` (or by the subclass itself).
        """
        return 1

    def output_channels(self) -> Tuple[int, ...]:
        """Channels of each output of :meth:`extract`.

        Default: each tap's channels, plus :attr:`num_tokens` where maps of
        the tap's resolution are concatenated. Override it together with
        :meth:`extract` when that changes the channels (e.g. a projection).
        """
        return tuple(
            chans + (self.num_tokens
                     if stride // self.vae_factor in self.attn_downsamples
                     else 0)
            for chans, stride in zip(self.tap_channels, self.tap_strides))

    @property
    def feature_info(self) -> List[dict]:
        """timm-style ``[dict(num_chs, reduction, module)]``, one per
        output (the ``vae_taps`` first, then :meth:`output_channels`),
        computed once (see the class docstring)."""
        if self._feature_info is None:
            self._feature_info = [
                dict(num_chs=c, reduction=s, module=f'vae.encoder.{p}')
                for c, s, p in zip(self.vae_tap_channels,
                                   self.vae_tap_strides, self.vae_tap_paths)
            ] + [
                dict(num_chs=c, reduction=s, module=f'unet.{p}')
                for c, s, p in zip(self.output_channels(), self.tap_strides,
                                   self.tap_paths)
            ]
        return self._feature_info

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each output (from :attr:`feature_info`)."""
        return tuple(info['num_chs'] for info in self.feature_info)

    def finish_build(self) -> None:
        """Called once after the most derived ``__init__``: computes
        :attr:`feature_info`. Extend it (calling ``super()``) for checks that
        need the whole object."""
        self.feature_info  # noqa: B018 (computed and cached)

    # ------------------------------------------------------------------
    # Weights and training mode
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Load the pretrained SD weights, then apply ``init_cfg``."""
        if not self._is_init and self.pretrained is not None:
            load_diffusion_weights(self.unet, self.vae, self.pretrained,
                                   self.original_config,
                                   self.local_files_only)
        if not self._is_init and self.unet_weights is not None:
            load_unet_weights(self.unet, self.unet_weights)
        if not self._is_init and self.vae_weights is not None:
            load_vae_weights(self.vae, self.vae_weights,
                             self.local_files_only)
        super().init_weights()
        self._is_init = True

    def _freeze_stages(self) -> None:
        """VAE frozen and in eval unless ``freeze_vae=False``; U-Net too
        when ``freeze_unet``; U-Net parameters no tap depends on always
        frozen."""
        freeze(([self.vae] if self.freeze_vae else []) +
               ([self.unet] if self.freeze_unet else []), self.unet,
               self.unused_unet_params)

    def train(self, mode: bool = True) -> 'DiffusionBackbone':
        """Set training mode, keeping frozen parts frozen and in eval."""
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------
    # Forward: the template method and its extension points
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Union[Tensor, Tuple[Tensor, Tensor]],
                class_ids: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Extract features (the template method; see the class docstring).

        Args:
            inputs (Tensor | tuple[Tensor, Tensor]): Images ``(B, 3, H, W)``
                in [-1, 1]; any size, padded internally to a multiple of
                ``size_divisor``. Or ``(images, class_ids)``, as mmseg's
                ``DepthEstimator`` passes them when the backbone has
                ``class_embed_select`` and the metainfo a ``category_id``.
            class_ids (Tensor, optional): Per-image class index for
                conditioning with one embedding per image. Defaults to None.

        Returns:
            tuple[Tensor]: One map per output (the ``vae_taps``, then the
            U-Net taps), ``(B, out_channels[i], ceil(H / s_i),
            ceil(W / s_i))`` with ``s_i`` its stride, in the input's dtype.
        """
        if isinstance(inputs, (tuple, list)):
            inputs, class_ids = inputs
        check_images(self, inputs)
        images, out_hw = pad_images(inputs, self.size_divisor,
                                    self.pad_shape, self.pad_val)
        with self.autocast(images.device.type):
            with self.vae_taps.capture() as vae_feats:
                latents = self.encode(images)
            cond = self.condition(images.shape[0], class_ids)
            outs = self.extract(latents, cond.to(latents.device), out_hw)
            outs = self.vae_outputs(vae_feats, images, out_hw) + tuple(outs)
        if self.amp_dtype is None:
            return tuple(outs)
        return tuple(out.to(inputs.dtype) for out in outs)

    def vae_outputs(self, feats: Dict[str, Tensor], images: Tensor,
                    out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """The ``vae_taps`` recorded while ``images`` were encoded, cropped
        to ``out_hw``; refused when the encoder did not see the whole batch
        in one pass (``vae.enable_slicing()`` / ``enable_tiling()`` run it
        per image or per tile: the hooks would keep only the last one)."""
        outs = []
        for path, stride in zip(self.vae_tap_paths, self.vae_tap_strides):
            feat = feats[path]
            want = (images.shape[0], images.shape[-2] // stride,
                    images.shape[-1] // stride)
            if (feat.shape[0], *feat.shape[-2:]) != want:
                raise RuntimeError(
                    f'vae_taps: vae.encoder.{path} gave {tuple(feat.shape)} '
                    f'for a batch of {tuple(images.shape)} (expected batch '
                    f'and size {want}): the VAE encoded the batch in slices '
                    'or tiles. Fix: vae.disable_slicing() and '
                    'vae.disable_tiling() when using vae_taps.')
            outs.append(crop(feat, stride, out_hw))
        return tuple(outs)

    def autocast(self, device_type: str):
        """``torch.autocast`` to ``amp_dtype``, or a no-op context."""
        return autocast_context(self.amp_dtype, device_type)

    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None) -> Tensor:
        """Encoder hidden states ``(B, N, D)``: here a null (zero) token.

        Extension point; ``N`` must equal :attr:`num_tokens`.
        """
        return torch.zeros(batch_size, 1, self.cross_attention_dim,
                           device=self.unet.device, dtype=self.unet.dtype)

    def extract(self, latents: Tensor, cond: Tensor,
                out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Features of clean VAE latents (extension point).

        Default: :meth:`add_noise`, one :meth:`run_unet` pass,
        :meth:`tap_outputs`. Runs under :meth:`autocast`.

        Args:
            latents (Tensor): ``(B, 4, h, w)`` from :meth:`encode` (padded
                images, no noise yet).
            cond (Tensor): ``(B, N, D)`` from :meth:`condition`.
            out_hw (tuple[int, int]): Image size the outputs are cropped to.

        Returns:
            tuple[Tensor]: One map per output, channels as
            :meth:`output_channels`.
        """
        feats, maps = self.run_unet(self.add_noise(latents), cond)
        return self.tap_outputs(feats, maps, out_hw)

    def reduce_maps(self, maps: Dict[int, Tensor]) -> Dict[int, Tensor]:
        """Turn per-token maps into output channels (identity here).

        Extension point, called by :meth:`tap_outputs`.
        """
        return maps

    # ------------------------------------------------------------------
    # Building blocks of extract()
    # ------------------------------------------------------------------
    def encode(self, images: Tensor) -> Tensor:
        """VAE latents of images in [-1, 1] (no gradient while the VAE is
        frozen, i.e. unless ``freeze_vae=False``).

        Args:
            images (Tensor): ``(B, 3, H, W)``, H and W multiples of the VAE
                factor.

        Returns:
            Tensor: ``(B, 4, H / 8, W / 8)`` for SD.
        """
        latents = encode_latents(self.vae, images, self.latent_mode,
                                 not self.freeze_vae)
        if self.scale_latents:
            latents = latents * self.vae.config.scaling_factor
        return latents

    def add_noise(self, latents: Tensor, timestep: Optional[int] = None,
                  seed: Optional[int] = None) -> Tensor:
        """Apply the noise policy at ``timestep`` (default: the backbone's),
        with ``seed`` for ``'seeded'`` noise (default: ``noise_seed``)."""
        return add_noise(self.scheduler, self.noise, latents,
                         self.timestep if timestep is None else timestep,
                         self.noise_seed if seed is None else seed)

    def run_unet(self, latents: Tensor, cond: Tensor,
                 timestep: Optional[int] = None
                 ) -> Tuple[Dict[str, Tensor], Dict[int, Tensor]]:
        """Run the U-Net up to the last tap.

        Args:
            latents (Tensor): U-Net input ``(B, 4, h, w)``.
            cond (Tensor): Encoder hidden states ``(B, N, D)``.
            timestep (int, optional): Defaults to the backbone's.

        Returns:
            tuple[dict, dict]: ``tap path -> feature`` and ``downsample ->
            (B, N, h / d, w / d)`` attention maps.
        """
        batch = latents.shape[0]
        timestep = self.timestep if timestep is None else timestep
        t = torch.full((batch, ), timestep, device=latents.device)
        kwargs = added_cond_kwargs(self.pooled_text_embeds, self.time_ids,
                                   latents, self.vae_factor)
        self.attn_store.reset()
        self.attn_store.active = True
        try:
            with self.taps.capture() as feats:
                try:
                    self.unet(latents, t, encoder_hidden_states=cond,
                              return_dict=False, **kwargs)
                except TapsDone:
                    pass
            maps = self.attn_store.maps(latents.shape[-2:])
        finally:
            self.attn_store.active = False
            self.attn_store.reset()
        return feats, maps

    def tap_outputs(self, feats: Dict[str, Tensor], maps: Dict[int, Tensor],
                    out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Taps (+ :meth:`reduce_maps` of their resolution), cropped to
        ``out_hw``, in tap order."""
        maps = self.reduce_maps(maps)
        outs = []
        for path, stride in zip(self.tap_paths, self.tap_strides):
            feat = feats[path]
            down = stride // self.vae_factor
            if down in maps:
                feat = torch.cat([feat, maps[down].to(feat.dtype)], dim=1)
            outs.append(crop(feat, stride, out_hw))
        return tuple(outs)
