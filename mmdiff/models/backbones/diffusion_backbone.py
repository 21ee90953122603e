"""A generic feature backbone on a diffusers Stable Diffusion U-Net + VAE.

Data path: image in [-1, 1] -> pad to the U-Net multiple -> frozen VAE
encoder (posterior mode/sample) -> optional latent scaling and noise ->
U-Net at a fixed timestep, conditioned by the ``conditioner`` component ->
features tapped inside the U-Net (+ cross-attention maps) -> cropped back ->
tuple.

The pieces live by concern: U-Net/VAE building, weights, encoding and the
scheduler in the SD core (``diffusion/sd_core.py``); conditioning in
``models/conditioning``; image checks and padding in ``backbones/inputs.py``;
probing in ``diffusion/probe.py``; noise in ``diffusion/noise.py``; SDXL
added conditioning in ``diffusion/added_cond.py``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdiff.models.attention import AttentionStore
from mmdiff.models.conditioning import (ConditionedBackbone,
                                        build_conditioner)
from mmdiff.models.diffusion import FeatureTaps, TapsDone, vpd_default_taps
from mmdiff.models.diffusion.added_cond import (added_cond_kwargs,
                                                pooled_text_embeds)
from mmdiff.models.diffusion.noise import add_noise, check_noise
from mmdiff.models.diffusion.probe import probe_unet
from mmdiff.models.diffusion.sd_core import SDCore
from mmdiff.models.diffusion.vae_taps import (probe_vae_taps,
                                              vae_feature_taps, vae_tap_paths)
from mmdiff.registry import MODELS
from .inputs import as_pad_shape, check_images, crop, pad_images


@MODELS.register_module()
class DiffusionBackbone(SDCore, ConditionedBackbone, BaseModule):
    """Multi-scale features from a Stable Diffusion U-Net (VPD-style).

    What the U-Net attends to is a component, ``conditioner`` (a null prompt
    by default; :class:`VPD` builds VPD's class prompts).

    :meth:`forward` is a template method: it checks and pads the images,
    enters ``torch.autocast`` (``amp_dtype``), encodes them with the VAE,
    asks the conditioner for the tokens (passing ``class_ids`` and the
    per-image ``metainfo`` it was called with), calls :meth:`extract` and
    returns its features in the input's dtype. Extension points:

    * ``conditioner``: a registered
      :class:`~mmdiff.models.conditioning.Conditioner` (tokens, their
      parameters, what becomes of their attention maps);
    * :meth:`extract`: latents -> features (default: noise, one U-Net pass
      through :meth:`run_unet`, :meth:`tap_outputs`); override it for
      several passes or post-processing, built from :meth:`add_noise`,
      :meth:`run_unet` and :meth:`tap_outputs`;
    * :meth:`output_channels`: override it with :meth:`extract` when that
      changes the channels. ``feature_info``/``out_channels`` are computed
      from it on first use, so a subclass may set the state it reads after
      the base ``__init__``.

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
        conditioner (dict, optional): The conditioning component, e.g.
            ``dict(type='ClassPrompts', class_embeddings=...)``; built with
            ``dim`` (the U-Net's ``cross_attention_dim``) and
            ``local_files_only``. Defaults to None (``NullPrompt``: one
            all-zero token).
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
                 conditioner: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        check_noise(noise)
        self.use_attn = use_attn
        self.attn_grad = attn_grad
        self.timestep = timestep
        self.noise = noise
        self.noise_seed = noise_seed
        self.pad_shape = as_pad_shape(pad_shape)
        self.pad_val = pad_val
        self._feature_info: Optional[List[dict]] = None
        # LoRA is added before probing, which lists the parameters to keep
        # frozen by name
        self.build_sd(pretrained, unet_cfg, vae_cfg, original_config,
                      local_files_only, unet_weights, vae_weights,
                      lora=lora, freeze_unet=freeze_unet,
                      freeze_vae=freeze_vae,
                      grad_checkpointing=grad_checkpointing,
                      latent_mode=latent_mode,
                      scale_latents=scale_latents, amp_dtype=amp_dtype)
        self.conditioner = build_conditioner(
            conditioner, self.cross_attention_dim, local_files_only)
        if use_attn and self.num_tokens < 2:
            raise ValueError(
                f'use_attn=True needs K >= 2 tokens per image (maps over a '
                f'single token are constant); {type(self).__name__}\'s '
                f'{type(self.conditioner).__name__} gives '
                f'{self.num_tokens}. Fix: class embeddings with several '
                'classes (and no per-image selection), or use_attn=False.')
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
        self._freeze_stages()

    # ------------------------------------------------------------------
    # Channels and feature info
    # ------------------------------------------------------------------
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
        computed on first use (see the class docstring)."""
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

    # ------------------------------------------------------------------
    # Weights and training mode
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Load the pretrained SD weights, then apply ``init_cfg``."""
        if not self._is_init:
            self.load_sd_weights()
        super().init_weights()
        self._is_init = True

    def _freeze_stages(self) -> None:
        """VAE frozen and in eval unless ``freeze_vae=False``; U-Net too
        when ``freeze_unet``; U-Net parameters no tap depends on always
        frozen."""
        self.freeze_sd()
        for name in self.unused_unet_params:
            self.unet.get_parameter(name).requires_grad = False

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
                class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None
                ) -> Tuple[Tensor, ...]:
        """Extract features (the template method; see the class docstring).

        Args:
            inputs (Tensor | tuple[Tensor, Tensor]): Images ``(B, 3, H, W)``
                in [-1, 1]; any size, padded internally to a multiple of
                ``size_divisor``. Or ``(images, class_ids)``, as mmseg's
                ``DepthEstimator`` passes them when the backbone has
                ``class_embed_select`` and the metainfo a ``category_id``.
            class_ids (Tensor, optional): Per-image class index for
                conditioning with one embedding per image. Defaults to None.
            metainfo (Sequence[dict], optional): Per-image metainfo for the
                conditioner (e.g. ``img_path`` for captions; mmdiff's
                ``MetainfoEncoderDecoder`` passes it). Defaults to None.

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
            cond = self.condition(images.shape[0], class_ids, metainfo)
            outs = self.extract(latents, cond, out_hw)
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

    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None,
                  metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        """The conditioner's tokens ``(B, N, D)`` on the U-Net's device, in
        its dtype."""
        cond = self.conditioner(batch_size, class_ids, metainfo)
        return cond.to(device=self.unet.device, dtype=self.unet.dtype)

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

    # ------------------------------------------------------------------
    # Building blocks of extract()
    # ------------------------------------------------------------------
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
        """Taps (+ the conditioner's ``reduce_maps`` of their resolution),
        cropped to ``out_hw``, in tap order."""
        maps = self.conditioner.reduce_maps(maps)
        outs = []
        for path, stride in zip(self.tap_paths, self.tap_strides):
            feat = feats[path]
            down = stride // self.vae_factor
            if down in maps:
                feat = torch.cat([feat, maps[down].to(feat.dtype)], dim=1)
            outs.append(crop(feat, stride, out_hw))
        return tuple(outs)
