"""A generic feature backbone on a diffusers Stable Diffusion U-Net + VAE.

Data path: image in [-1, 1] -> pad to the U-Net multiple -> frozen VAE
encoder (posterior mode/sample) -> optional latent scaling and noise ->
U-Net at a fixed timestep, conditioned by ``condition()`` -> features tapped
inside the U-Net (+ cross-attention maps) -> cropped back -> tuple.
"""
import contextlib
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmdiff.models.attention import (AttentionStore, cross_attention_layers,
                                     install_map_processors)
from mmdiff.models.diffusion import (FeatureTaps, TapsDone,
                                     load_diffusion_configs,
                                     load_diffusion_weights,
                                     load_unet_weights, load_vae_weights,
                                     resolve_pooled_text_embeds,
                                     sdxl_time_ids, text_time_dims,
                                     vpd_default_taps)
from mmdiff.models.diffusion.lora import add_unet_lora, check_lora_cfg
from mmdiff.registry import MODELS
from mmdiff.utils.validation import check_image_size


@MODELS.register_module()
class DiffusionBackbone(BaseModule):
    """Multi-scale features from a Stable Diffusion U-Net (VPD-style).

    Conditioning here is a null prompt (one all-zero token); subclasses such
    as :class:`VPD` override :meth:`condition`.

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
        if latent_mode not in ('mode', 'sample'):
            raise ValueError(f"latent_mode must be 'mode' or 'sample', got "
                             f'{latent_mode!r}.')
        if noise not in ('none', 'seeded', 'random'):
            raise ValueError(f"noise must be 'none', 'seeded' or 'random', "
                             f'got {noise!r}.')
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
        if amp_dtype not in (None, 'bfloat16', 'float16'):
            raise ValueError(f"amp_dtype must be None, 'bfloat16' or "
                             f"'float16', got {amp_dtype!r}.")
        self.amp_dtype = amp_dtype
        self.lora = check_lora_cfg(lora, freeze_unet)
        if isinstance(pad_shape, int):
            pad_shape = (pad_shape, pad_shape)
        self.pad_shape = tuple(pad_shape) if pad_shape is not None else None
        self.pad_val = pad_val

        unet_config, vae_config = load_diffusion_configs(
            pretrained, unet_cfg, vae_cfg, original_config, local_files_only)
        self.unet = UNet2DConditionModel.from_config(unet_config)
        if self.lora is not None:  # before _probe, which lists the params
            add_unet_lora(self.unet, **self.lora)  # to keep frozen by name
        vae = AutoencoderKL.from_config(vae_config)
        vae.decoder = None  # never used: features come from the encoder
        vae.post_quant_conv = None
        self.vae = vae
        self.scheduler = None
        if noise != 'none':
            from diffusers import DDPMScheduler
            self.scheduler = DDPMScheduler(
                beta_start=0.00085, beta_end=0.012,
                beta_schedule='scaled_linear', num_train_timesteps=1000)

        self.in_channels = self.vae.config.in_channels
        cross_dim = self.unet.config.cross_attention_dim
        self.cross_attention_dim = int(cross_dim if isinstance(cross_dim, int)
                                       else cross_dim[0])
        self.vae_factor = 2**(len(self.vae.config.block_out_channels) - 1)
        self.unet_factor = 2**sum(
            1 for b in self.unet.down_blocks
            if getattr(b, 'downsamplers', None))
        self.size_divisor = self.vae_factor * self.unet_factor
        self._init_added_cond(text_embeds, time_ids)

        self.tap_paths = list(taps) if taps else vpd_default_taps(self.unet)
        self.taps = FeatureTaps(self.unet, self.tap_paths)
        self.attn_store = AttentionStore(detach=not attn_grad)
        self.attn_places = tuple(attn_places)
        self.attn_min_downsample = attn_min_downsample
        self._probe()
        if grad_checkpointing:
            self.unet.enable_gradient_checkpointing()
        self._update_feature_info()
        self._freeze_stages()

    # ------------------------------------------------------------------
    # Architecture probing and feature info
    # ------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        """Tokens in the conditioning (= channels of each attention map)."""
        return 1

    def _probe(self) -> None:
        """One tiny forward: tap channels/strides, attention resolutions."""
        candidates = cross_attention_layers(self.unet, self.attn_places) \
            if self.use_attn else []
        install_map_processors(self.unet, self.attn_store, candidates)
        size = self.unet_factor
        latents = torch.zeros(1, self.unet.config.in_channels, size, size)
        cond = torch.zeros(1, 2, self.cross_attention_dim)
        self.attn_store.layer_tokens = {}
        self.taps.stop_early = False
        with torch.enable_grad():
            feats, _ = self._run_unet(latents, cond)
        self.taps.stop_early = self.taps.last_fired_is_block(feats)
        # Parameters no tap depends on (conv_norm_out/conv_out for VPD) are
        # frozen, so that DDP needs no find_unused_parameters.
        used = _graph_leaves(list(feats.values()))
        self.unused_unet_params = [
            name for name, param in self.unet.named_parameters()
            if param not in used
        ]
        self.tap_channels, self.tap_strides = [], []
        for path in self.tap_paths:
            feat = feats[path]
            self.tap_channels.append(feat.shape[1])
            self.tap_strides.append(self.vae_factor * size // feat.shape[-1])
        self.attn_layers = {}
        for name, num_queries in self.attn_store.layer_tokens.items():
            down = int(round(math.sqrt(size * size / num_queries)))
            if down >= self.attn_min_downsample:
                self.attn_layers[name] = down
        install_map_processors(self.unet, self.attn_store, self.attn_layers)
        self.attn_downsamples = sorted(set(self.attn_layers.values()))

    def _init_added_cond(self, text_embeds, time_ids) -> None:
        """SDXL ``text_time`` inputs: pooled prompt embedding, time ids."""
        self.time_ids = time_ids
        num_ids = 6 if isinstance(time_ids, str) else len(time_ids)
        dims = text_time_dims(self.unet.config, num_ids)
        if dims is None:
            if text_embeds is not None:
                raise ValueError(
                    'text_embeds is only used by U-Nets with SDXL added '
                    "conditioning (addition_embed_type='text_time'); this "
                    'U-Net has none. Fix: drop text_embeds.')
            self.pooled_text_embeds = None
            return
        sdxl_time_ids(time_ids, 1, (1, 1), 'cpu')  # validate early
        emb, learnable = resolve_pooled_text_embeds(text_embeds, dims[0])
        if learnable:
            self.pooled_text_embeds = torch.nn.Parameter(emb)
        else:
            self.register_buffer('pooled_text_embeds', emb)

    def _update_feature_info(self) -> None:
        """Set ``out_channels`` and timm-style ``feature_info``."""
        channels = []
        for chans, stride in zip(self.tap_channels, self.tap_strides):
            if stride // self.vae_factor in self.attn_downsamples:
                chans += self.num_tokens
            channels.append(chans)
        self.out_channels = tuple(channels)
        self.feature_info = [
            dict(num_chs=c, reduction=s, module=f'unet.{p}') for c, s, p in
            zip(self.out_channels, self.tap_strides, self.tap_paths)
        ]

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
        """VAE always frozen and in eval; U-Net too when ``freeze_unet``."""
        frozen = [self.vae] + ([self.unet] if self.freeze_unet else [])
        for module in frozen:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False
        for name in self.unused_unet_params:
            self.unet.get_parameter(name).requires_grad = False

    def train(self, mode: bool = True) -> 'DiffusionBackbone':
        """Set training mode, keeping frozen parts frozen and in eval."""
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None) -> Tensor:
        """Encoder hidden states ``(B, N, D)``: here a null (zero) token."""
        return torch.zeros(batch_size, 1, self.cross_attention_dim,
                           device=self.unet.device, dtype=self.unet.dtype)

    def reduce_maps(self, maps: Dict[int, Tensor]) -> Dict[int, Tensor]:
        """Turn per-token maps into output channels (identity here)."""
        return maps

    def _unet_kwargs(self, latents: Tensor) -> dict:
        """Extra U-Net inputs: SDXL's ``added_cond_kwargs`` if needed."""
        if self.pooled_text_embeds is None:
            return {}
        batch = latents.shape[0]
        image_hw = tuple(s * self.vae_factor for s in latents.shape[-2:])
        text = self.pooled_text_embeds.to(latents.device, latents.dtype)
        return dict(added_cond_kwargs=dict(
            text_embeds=text[None].expand(batch, -1),
            time_ids=sdxl_time_ids(self.time_ids, batch, image_hw,
                                   latents.device).to(latents.dtype)))

    def _run_unet(self, latents: Tensor, cond: Tensor,
                  timestep: Optional[int] = None
                  ) -> Tuple[Dict[str, Tensor], Dict[int, Tensor]]:
        """Run the U-Net up to the last tap; return taps and maps."""
        batch = latents.shape[0]
        timestep = self.timestep if timestep is None else timestep
        t = torch.full((batch, ), timestep, device=latents.device)
        self.attn_store.reset()
        self.attn_store.active = True
        try:
            with self.taps.capture() as feats:
                try:
                    self.unet(latents, t, encoder_hidden_states=cond,
                              return_dict=False,
                              **self._unet_kwargs(latents))
                except TapsDone:
                    pass
            maps = self.attn_store.maps(latents.shape[-2:])
        finally:
            self.attn_store.active = False
            self.attn_store.reset()
        return feats, maps

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """VAE latents of images in [-1, 1] (no gradient, ever).

        Args:
            images (Tensor): ``(B, 3, H, W)``, H and W multiples of the VAE
                factor.

        Returns:
            Tensor: ``(B, 4, H / 8, W / 8)`` for SD.
        """
        param = next(self.vae.parameters())
        dist = self.vae.encode(images.to(param.dtype)).latent_dist
        latents = dist.mode() if self.latent_mode == 'mode' else dist.sample()
        if self.scale_latents:
            latents = latents * self.vae.config.scaling_factor
        return latents

    def add_noise(self, latents: Tensor, timestep: Optional[int] = None,
                  seed: Optional[int] = None) -> Tensor:
        """Apply the noise policy at ``timestep`` (default: the backbone's),
        with ``seed`` for ``'seeded'`` noise (default: ``noise_seed``)."""
        if self.noise == 'none':
            return latents
        timestep = self.timestep if timestep is None else timestep
        generator = None
        if self.noise == 'seeded':
            generator = torch.Generator(latents.device).manual_seed(
                self.noise_seed if seed is None else seed)
        noise = torch.randn(latents.shape, generator=generator,
                            device=latents.device, dtype=latents.dtype)
        t = torch.full((latents.shape[0], ), timestep,
                       device=latents.device, dtype=torch.long)
        return self.scheduler.add_noise(latents, noise, t)

    def _check_inputs(self, inputs: Tensor) -> None:
        if inputs.ndim != 4 or inputs.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__} expects images (B, '
                f'{self.in_channels}, H, W) normalised to [-1, 1], got shape '
                f'{tuple(inputs.shape)}. Fix: use RGB inputs (data '
                'preprocessor mean=[127.5] * 3, std=[127.5] * 3, '
                'bgr_to_rgb=True) or a VAE whose in_channels match.')
        check_image_size(self, inputs)  # at least one latent pixel
        if not torch.isfinite(inputs).all():
            raise FloatingPointError(
                f'{type(self).__name__} received images holding NaN/inf '
                'values (after the data preprocessor): features and metrics '
                'would be meaningless. Fix: check data_preprocessor mean/std '
                '(a std of 0 divides by zero) and the images/transforms.')

    def forward(self,
                inputs: Union[Tensor, Tuple[Tensor, Tensor]],
                class_ids: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Extract features.

        Args:
            inputs (Tensor | tuple[Tensor, Tensor]): Images ``(B, 3, H, W)``
                in [-1, 1]; any size, padded internally to a multiple of
                ``size_divisor``. Or ``(images, class_ids)``, as mmseg's
                ``DepthEstimator`` passes them when the backbone has
                ``class_embed_select`` and the metainfo a ``category_id``.
            class_ids (Tensor, optional): Per-image class index for
                conditioning with one embedding per image. Defaults to None.

        Returns:
            tuple[Tensor]: One map per tap, ``(B, out_channels[i],
            ceil(H / s_i), ceil(W / s_i))`` with ``s_i`` the tap's stride.
        """
        inputs, class_ids, out_hw = self._prepare(inputs, class_ids)
        with self._autocast(inputs.device.type):
            latents = self.add_noise(self.encode(inputs))
            cond = self.condition(inputs.shape[0], class_ids)
            outs = self._outputs(
                *self._run_unet(latents, cond.to(latents.device)), out_hw)
        if self.amp_dtype is None:
            return outs
        return tuple(out.to(inputs.dtype) for out in outs)

    def _autocast(self, device_type: str):
        """``torch.autocast`` to ``amp_dtype``, or a no-op context."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=getattr(torch,
                                                         self.amp_dtype))

    def _prepare(self, inputs: Union[Tensor, Tuple[Tensor, Tensor]],
                 class_ids: Optional[Tensor]) -> tuple:
        """Check and pad the images; the size the outputs are cropped to."""
        if isinstance(inputs, (tuple, list)):
            inputs, class_ids = inputs
        self._check_inputs(inputs)
        height, width = inputs.shape[-2:]
        if self.pad_shape is not None:
            height = max(height, self.pad_shape[0])
            width = max(width, self.pad_shape[1])
        div = self.size_divisor
        pad_h = math.ceil(height / div) * div - inputs.shape[-2]
        pad_w = math.ceil(width / div) * div - inputs.shape[-1]
        if pad_h or pad_w:
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), value=self.pad_val)
        return inputs, class_ids, (height, width)

    def _outputs(self, feats: Dict[str, Tensor], maps: Dict[int, Tensor],
                 out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Taps (+ maps of their resolution), cropped to ``out_hw``."""
        height, width = out_hw
        maps = self.reduce_maps(maps)
        outs = []
        for path, stride in zip(self.tap_paths, self.tap_strides):
            feat = feats[path]
            down = stride // self.vae_factor
            if down in maps:
                feat = torch.cat([feat, maps[down].to(feat.dtype)], dim=1)
            outs.append(feat[..., :math.ceil(height / stride),
                             :math.ceil(width / stride)])
        return tuple(outs)


def _graph_leaves(outputs: List[Tensor]) -> set:
    """Parameters (autograd leaves) that ``outputs`` depend on."""
    leaves, seen = set(), set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, 'variable'):
            leaves.add(node.variable)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return leaves
