"""Features from a diffusion transformer (SD3 / SD3.5, FLUX.1,
PixArt-Sigma, Sana).

Data path: image in [-1, 1] -> pad to the token multiple -> frozen VAE
encoder -> the model's latent normalisation (``(z - shift_factor) *
scaling_factor``; Sana's DC-AE: ``z * scaling_factor``) -> optional noise
(rectified flow for SD3/FLUX/Sana, DDPM for PixArt) -> the transformer at a
fixed timestep, conditioned by the ``conditioner`` component (null prompt,
class prompts ...) -> image tokens of the tapped blocks, reshaped to 2D
(+ text->image attention maps) -> cropped back -> tuple, all at one stride
(VAE factor x patch size: 16 for SD3/FLUX/PixArt, 32 for Sana): a
``mmdiff.SimpleFeaturePyramid`` neck turns them into a pyramid.

What differs per model family lives in :mod:`mmdiff.models.diffusion.dit`;
loading in :mod:`~mmdiff.models.diffusion.dit_loading`; the taps, LoRA,
noise policy, map store, conditioners, autocast and image checks are the
U-Net backbone's.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from torch import Tensor

from mmdiff.models.attention import AttentionStore
from mmdiff.models.conditioning import (ConditionedBackbone,
                                        build_conditioner)
from mmdiff.models.diffusion import FeatureTaps, TapsDone
from mmdiff.models.diffusion.dit_loading import (load_dit_configs,
                                                 load_dit_weights,
                                                 load_transformer_weights)
from mmdiff.models.diffusion.loading import load_vae_weights
from mmdiff.models.diffusion.lora import add_unet_lora, check_lora_cfg
from mmdiff.models.diffusion.noise import add_noise, dit_noise_scheduler
from mmdiff.models.diffusion.probe import graph_leaves
from mmdiff.models.diffusion.sd_core import (AMP_DTYPES, LATENT_MODES,
                                             SDCore, check_choice,
                                             vae_encode)
from mmdiff.registry import MODELS
from .inputs import as_pad_shape, check_images, crop, pad_images


@MODELS.register_module()
class DiTBackbone(ConditionedBackbone, BaseModule):
    """Hidden states of chosen diffusion-transformer blocks as features.

    Args:
        family (str, optional): ``'sd3'`` (SD3 / SD3.5), ``'flux'``
            (FLUX.1), ``'pixart'`` (PixArt-Sigma / -alpha) or ``'sana'``.
            None reads it from ``pretrained``'s ``transformer/config.json``.
            Defaults to None.
        pretrained (str, optional): Diffusers pipeline folder or hub id
            (``transformer/`` and ``vae/``), or an original single file
            (``from_single_file``, with ``original_config``). Read in
            :meth:`init_weights`. Defaults to None (random weights from
            ``transformer_cfg``/``vae_cfg``). Sana's original single file
            holds the transformer only: its DC-AE is read from
            ``original_config``'s ``vae/``.
        transformer_cfg (dict, optional): The transformer's config, used
            when ``pretrained`` is None. Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config (Sana:
            ``AutoencoderDC``), used when ``pretrained`` is None. Defaults
            to None.
        original_config (str, optional): Folder or hub id of the same model,
            for the configs of a single-file ``pretrained``. Defaults to
            None.
        local_files_only (bool): Never touch the network. Defaults to False.
        transformer_weights (str, optional): A transformer state dict file
            (diffusers layout, same architecture) loaded after
            ``pretrained`` as a drop-in. Defaults to None.
        vae_weights (str, optional): A stand-alone ``AutoencoderKL``
            (Sana: ``AutoencoderDC``) folder or hub id loaded after
            ``pretrained``. Defaults to None.
        taps (Sequence[int]): Block indices whose image tokens are returned,
            in this order (FLUX counts its joint blocks, then its single
            ones; negative indices count from the end). The forward stops
            after the last one needed. Defaults to (-1, ).
        attn_blocks (Sequence[int]): Blocks whose text->image attention maps
            (joint attention for SD3/FLUX, cross-attention for PixArt and
            Sana, whose linear self-attention has no probabilities; one
            channel per text token, averaged over heads and these blocks)
            are concatenated to every output. Maps are computed on these
            blocks only. Defaults to () (none).
        attn_grad (bool): Let gradients flow through the maps. Defaults to
            False.
        conditioner (dict, optional): The conditioning component giving the
            text tokens, built with ``dim`` = the model's text width
            (``joint_attention_dim``; PixArt, Sana: ``caption_channels``;
            Sana's Gemma-2 tokens are not computed by mmdiff: give them
            precomputed, or learnable ones), e.g.
            ``dict(type='ClassPrompts', class_embeddings=...)``: class
            prompt tokens ``(K, text_dim)``: computed (and cached) by the
            model's own T5 with ``dict(class_names=..., text_encoder=
            <pipeline>, text_encoder_subfolder='text_encoder_3' (SD3) |
            'text_encoder_2' (FLUX.1) | 'text_encoder' (PixArt),
            output='pooled' | 'tokens')``, a file, a tensor, or
            ``dict(num_classes=K, dim=D)`` learnable ones; another width
            than ``text_dim`` is a ``ValueError``. Defaults to None:
            ``NullPrompt``, one all-zero token.
        pooled_embeds (str | Tensor, optional): SD3/FLUX pooled text
            embedding ``(pooled_dim, )`` (a tensor or a ``.pth`` file, e.g.
            the CLIP-pooled empty prompt). Defaults to None (zeros).
        timestep (int): Timestep in [0, 1000): the DDPM step (PixArt) or
            ``sigma * 1000`` (SD3, Sana (times its ``timestep_scale``);
            FLUX: the model gets ``sigma``).
            Defaults to 1.
        noise (str): ``'none'``, ``'seeded'`` or ``'random'``:
            SD3/FLUX/Sana ``x_t = (1 - sigma) x_0 + sigma * eps``, PixArt
            DDPM.
            Defaults to 'none'.
        noise_seed (int): Seed of ``'seeded'`` noise. Defaults to 0.
        guidance (float): FLUX.1-dev's distilled guidance scale (the
            pipeline's default). Defaults to 3.5.
        latent_mode (str): ``'mode'`` or ``'sample'`` (not Sana: the
            DC-AE is deterministic). Defaults to 'mode'.
        freeze_vae (bool): VAE frozen and in eval. Defaults to True.
        freeze_transformer (bool): Transformer frozen. Defaults to False.
        grad_checkpointing (bool): diffusers gradient checkpointing of the
            blocks. Defaults to False.
        amp_dtype (str, optional): ``'bfloat16'``/``'float16'`` autocast of
            VAE and transformer. Defaults to None.
        lora (dict, optional): LoRA on the attention projections (peft;
            keys of :func:`~mmdiff.models.diffusion.lora.add_unet_lora`).
            Defaults to None.
        pad_shape (int | Sequence[int], optional): mmseg-VPD padding: pad
            inputs to at least this ``(h, w)`` and return the padded
            image's features, uncropped (VPD's NYU depth head trims them).
            Defaults to None (pad to the token multiple, crop back).
        init_cfg (dict | list[dict], optional): Defaults to None.
    """

    def __init__(self,
                 family: Optional[str] = None,
                 pretrained: Optional[str] = None,
                 transformer_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 original_config: Optional[str] = None,
                 local_files_only: bool = False,
                 transformer_weights: Optional[str] = None,
                 vae_weights: Optional[str] = None,
                 taps: Sequence[int] = (-1, ),
                 attn_blocks: Sequence[int] = (),
                 attn_grad: bool = False,
                 conditioner: Optional[dict] = None,
                 pooled_embeds: Optional[Union[str, Tensor]] = None,
                 timestep: int = 1,
                 noise: str = 'none',
                 noise_seed: int = 0,
                 guidance: float = 3.5,
                 latent_mode: str = 'mode',
                 freeze_vae: bool = True,
                 freeze_transformer: bool = False,
                 grad_checkpointing: bool = False,
                 amp_dtype: Optional[str] = None,
                 lora: Optional[dict] = None,
                 pad_shape: Optional[Union[int, Sequence[int]]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg)
        check_choice('latent_mode', latent_mode, LATENT_MODES)
        check_choice('amp_dtype', amp_dtype, AMP_DTYPES)
        self.family, tcfg, vcfg = load_dit_configs(
            family, pretrained, transformer_cfg, vae_cfg, original_config,
            local_files_only)
        if latent_mode == 'sample' and not self.family.vae_posterior:
            raise ValueError(
                "latent_mode='sample': Sana's DC-AE (AutoencoderDC) is "
                'deterministic, it has no posterior to sample. Fix: '
                "latent_mode='mode'.")
        self.scheduler = dit_noise_scheduler(noise, self.family.flow)
        self.pretrained = pretrained
        self.original_config = original_config
        self.local_files_only = local_files_only
        self.transformer_weights = transformer_weights
        self.vae_weights = vae_weights
        self.timestep = timestep
        self.noise = noise
        self.noise_seed = noise_seed
        self.guidance = guidance
        self.latent_mode = latent_mode
        self.freeze_vae = freeze_vae
        self.freeze_transformer = freeze_transformer
        self.amp_dtype = amp_dtype
        self.lora = check_lora_cfg(lora, freeze_transformer)
        self.pad_shape = as_pad_shape(pad_shape)

        self.family.check_config(tcfg)
        self.transformer = self.family.model_class().from_config(tcfg)
        if self.lora is not None:
            add_unet_lora(self.transformer, **self.lora)
        vae = self.family.vae_class().from_config(vcfg)
        vae.decoder = None  # features come from the encoder
        if hasattr(vae, 'post_quant_conv'):
            vae.post_quant_conv = None
        self.vae = vae
        self.in_channels = vae.config.in_channels
        self.vae_factor = self.family.vae_factor(vae)
        self.patch = self.family.patch(self.transformer)
        self.size_divisor = self.vae_factor * self.patch
        self.text_dim = self.family.text_dim(self.transformer)
        self.pooled_dim = self.family.pooled_dim(self.transformer)

        blocks = self.family.block_paths(self.transformer)
        self.tap_blocks = _block_indices(taps, len(blocks), 'taps')
        self.attn_blocks = _block_indices(attn_blocks, len(blocks),
                                          'attn_blocks')
        self.tap_paths = [blocks[i] for i in self.tap_blocks]
        # the forward runs up to the last block any output needs
        last = blocks[max(self.tap_blocks + self.attn_blocks)]
        self.taps = FeatureTaps(
            self.transformer, list(dict.fromkeys(self.tap_paths + [last])),
            stop_early=True, owner=self.family.class_name,
            example="'transformer_blocks.0'",
            output_index=self.family.output_index)
        self.attn_store = AttentionStore(detach=not attn_grad)
        self._install_map_processors()

        self.conditioner = build_conditioner(conditioner, self.text_dim,
                                             local_files_only)
        pooled = _pooled(pooled_embeds, self.pooled_dim)
        if pooled is None:
            self.pooled_embeds = None
        else:
            self.register_buffer('pooled_embeds', pooled)
        self.unused_params = self._probe()
        if grad_checkpointing:
            self.transformer.enable_gradient_checkpointing()
        self._freeze_stages()

        width = self.family.width(self.transformer)
        chans = width + (
            self.num_tokens if self.attn_blocks else 0)
        stride = self.size_divisor
        # what the host-model checks (mmdiff.apis.host_checks) read
        self.use_attn = bool(self.attn_blocks)
        self.tap_channels = [width] * len(self.tap_paths)
        self.attn_downsamples = [self.patch] if self.use_attn else []
        self.feature_info = [
            dict(num_chs=chans, reduction=stride, module=f'transformer.{p}')
            for p in self.tap_paths]
        self.out_channels = tuple(chans for _ in self.tap_paths)

    # ------------------------------------------------------------------
    # Building
    # ------------------------------------------------------------------
    def _install_map_processors(self) -> None:
        """Map-collecting processors on the ``attn_blocks``' layers only."""
        layers = self.family.map_layers(self.transformer, self.attn_blocks)
        if not layers:
            return
        procs = dict(self.transformer.attn_processors)
        for name in layers:
            procs[name] = self.family.map_processor(procs[name],
                                                    self.attn_store, name)
        self.transformer.set_attn_processor(procs)

    def _probe(self) -> List[str]:
        """One one-token forward with gradient: the transformer parameters
        no output depends on (frozen, so DDP needs no
        ``find_unused_parameters``)."""
        latents = torch.zeros(1, self.transformer.config.in_channels
                              // (4 if self.family.name == 'flux' else 1),
                              self.patch, self.patch)
        with torch.enable_grad():
            feats, maps = self.run_transformer(latents, *self.condition(1))
        outs = [feats[p] for p in self.tap_paths] + list(maps.values())
        used = graph_leaves(outs)
        return [name for name, param in self.transformer.named_parameters()
                if param not in used]

    # ------------------------------------------------------------------
    # Weights and training mode
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Load ``pretrained``, the drop-ins, then apply ``init_cfg``."""
        if not self._is_init and self.pretrained is not None:
            load_dit_weights(self.family, self.transformer, self.vae,
                             self.pretrained, self.original_config,
                             self.local_files_only)
        if not self._is_init and self.transformer_weights is not None:
            load_transformer_weights(self.transformer,
                                     self.transformer_weights)
        if not self._is_init and self.vae_weights is not None:
            load_vae_weights(self.vae, self.vae_weights,
                             self.local_files_only,
                             vae_class=self.family.vae_class())
        super().init_weights()
        self._is_init = True

    def _freeze_stages(self) -> None:
        frozen = ([self.vae] if self.freeze_vae else []) + (
            [self.transformer] if self.freeze_transformer else [])
        for module in frozen:
            module.eval()
            module.requires_grad_(False)
        for name in self.unused_params:
            self.transformer.get_parameter(name).requires_grad = False

    def train(self, mode: bool = True) -> 'DiTBackbone':
        """Set training mode, keeping frozen parts frozen and in eval."""
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    #: ``torch.autocast`` to ``amp_dtype``, or a no-op (the SD core's).
    autocast = SDCore.autocast

    def forward(self,
                inputs: Union[Tensor, Tuple[Tensor, Tensor]],
                class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None
                ) -> Tuple[Tensor, ...]:
        """Features of images ``(B, 3, H, W)`` in [-1, 1], any size (or
        ``(images, class_ids)``); ``class_ids`` and ``metainfo`` go to the
        conditioner.

        Returns:
            tuple[Tensor]: One ``(B, out_channels[i], ceil(H / s),
            ceil(W / s))`` map per tap, ``s`` the stride, in the input's
            dtype.
        """
        if isinstance(inputs, (tuple, list)):
            inputs, class_ids = inputs
        check_images(self, inputs)
        images, out_hw = pad_images(inputs, self.size_divisor,
                                    self.pad_shape)
        self.family.check_size(self.transformer,
                               tuple(s // self.vae_factor
                                     for s in images.shape[-2:]),
                               self.vae_factor)
        with self.autocast(images.device.type):
            latents = self.add_noise(self.encode(images))
            text, pooled = self.condition(images.shape[0], class_ids,
                                          metainfo)
            feats, maps = self.run_transformer(latents, text, pooled)
            outs = self.outputs(feats, maps, out_hw)
        return tuple(out.to(inputs.dtype) for out in outs)

    def encode(self, images: Tensor) -> Tensor:
        """Normalised VAE latents, as the model was trained on them."""
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.freeze_vae):
            latents = vae_encode(self.vae, images, self.latent_mode)
        shift = self.vae.config.get('shift_factor') or 0.
        return (latents - shift) * self.vae.config.scaling_factor

    def add_noise(self, latents: Tensor) -> Tensor:
        """The noise policy at the backbone's timestep."""
        return add_noise(self.scheduler, self.noise, latents, self.timestep,
                         self.noise_seed)

    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None,
                  metainfo: Optional[Sequence[dict]] = None
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        """The conditioner's text tokens ``(B, N, text_dim)`` and the
        pooled embedding ``(B, pooled_dim)`` (None where the model takes
        none)."""
        device = next(self.transformer.parameters()).device
        text = self.conditioner(batch_size, class_ids, metainfo).to(device)
        if self.pooled_dim is None:
            return text, None
        pooled = self.pooled_embeds
        if pooled is None:
            pooled = text.new_zeros(self.pooled_dim)
        return text, pooled.to(text.dtype).expand(batch_size, -1)

    def run_transformer(self, latents: Tensor, text: Tensor,
                        pooled: Optional[Tensor]
                        ) -> Tuple[Dict[str, Tensor], Dict[int, Tensor]]:
        """Run the transformer up to the last block needed.

        Returns:
            tuple[dict, dict]: ``block path -> (B, C, h, w)`` image tokens
            and ``{1: (B, N, h, w)}`` maps (empty without ``attn_blocks``).
        """
        grid = tuple(s // self.patch for s in latents.shape[-2:])
        param = next(self.transformer.parameters())
        self.attn_store.reset()
        self.attn_store.active = True
        try:
            with self.taps.capture() as feats:
                try:
                    self.family.run(self.transformer, latents.to(param.dtype),
                                    text.to(param.dtype),
                                    None if pooled is None
                                    else pooled.to(param.dtype),
                                    self.timestep, self.guidance)
                except TapsDone:
                    pass
            maps = self.attn_store.maps(grid)
        finally:
            self.attn_store.active = False
            self.attn_store.reset()
        feats = {path: self.family.tokens_to_map(feat, grid)
                 for path, feat in feats.items()}
        return feats, maps

    def outputs(self, feats: Dict[str, Tensor], maps: Dict[int, Tensor],
                out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Tap maps (+ the conditioner's ``reduce_maps`` of the attention
        maps), cropped to ``out_hw``."""
        maps = self.conditioner.reduce_maps(maps)
        outs = []
        for path in self.tap_paths:
            feat = feats[path]
            if maps:
                feat = torch.cat([feat, maps[1].to(feat.dtype)], dim=1)
            outs.append(crop(feat, self.size_divisor, out_hw))
        return tuple(outs)


def _block_indices(indices: Sequence[int], num: int, arg: str) -> List[int]:
    """Validated, non-negative block indices."""
    if isinstance(indices, int):
        indices = (indices, )
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) \
                or not -num <= i < num:
            raise ValueError(
                f'{arg}={tuple(indices)}: {i!r} is not a block index of a '
                f'transformer with {num} blocks. Fix: integers in '
                f'[{-num}, {num - 1}] (negative counts from the end).')
        out.append(i % num)
    if arg == 'taps' and not out:
        raise ValueError('taps=() returns no features. Fix: e.g. '
                         'taps=(-1, ) for the last block.')
    return out


def _pooled(spec: Optional[Union[str, Tensor]],
            dim: Optional[int]) -> Optional[Tensor]:
    """The pooled embedding as a ``(dim, )`` tensor (None: zeros)."""
    if spec is None:
        return None
    if dim is None:
        raise ValueError('pooled_embeds is given, but this model takes no '
                         'pooled text embedding (PixArt, Sana). Fix: '
                         'drop it.')
    if isinstance(spec, str):
        from mmdiff.utils.checkpoint_io import read_checkpoint
        spec = read_checkpoint(spec, shown=f'pooled_embeds={spec}')
    tensor = torch.as_tensor(spec, dtype=torch.float32).reshape(-1)
    if tensor.numel() != dim:
        raise ValueError(f'pooled_embeds has {tensor.numel()} values; the '
                         f'model takes {dim}. Fix: the pooled embedding of '
                         "the model's own text encoder(s).")
    return tensor
