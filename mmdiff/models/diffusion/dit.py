"""Diffusion transformers (DiTs): what differs between model families.

One small adapter per diffusers transformer class says how the backbone
runs it: SD3 / SD3.5 (``SD3Transformer2DModel``, MMDiT), FLUX.1
(``FluxTransformer2DModel``: 2x2-packed latents, rotary position ids) and
PixArt-Sigma (``PixArtTransformer2DModel``: cross-attention to T5 tokens)
and Sana (``SanaTransformer2DModel`` on the DC-AE ``AutoencoderDC``: linear
self-attention, softmax cross-attention to Gemma-2 tokens). Each gives its
blocks (the tap points, in execution order), its token grid (patch size),
its VAE, the timestep convention of its pipeline, its conditioning widths,
where its text->image maps come from and what image sizes it can take.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn


class DiTFamily:
    """Base adapter (see the module docstring).

    Attributes:
        name (str): The ``family`` value.
        class_name (str): The diffusers model class.
        flow (bool): Rectified-flow noise (else DDPM).
        text_first (bool): Joint sequence order (FLUX: text, then image).
        vae_class_name (str): The diffusers VAE class.
        output_index (int): Which element of a block's tuple output is the
            image stream (SD3 / FLUX blocks return ``(text, image)``).
        single_file_vae (bool): The original single file also holds the
            VAE (else the VAE comes from ``original_config``'s ``vae/``).
        vae_posterior (bool): The VAE encodes to a distribution (else
            deterministic latents: ``latent_mode='sample'`` is refused).
    """
    name = ''
    class_name = ''
    flow = True
    text_first = False
    vae_class_name = 'AutoencoderKL'
    output_index = 1
    single_file_vae = True
    vae_posterior = True

    def model_class(self):
        import diffusers
        return getattr(diffusers, self.class_name)

    def vae_class(self):
        import diffusers
        return getattr(diffusers, self.vae_class_name)

    def vae_factor(self, vae: nn.Module) -> int:
        """Image pixels per latent pixel."""
        return 2**(len(vae.config.block_out_channels) - 1)

    def check_config(self, config: dict) -> None:
        """Refuse a transformer config of the class that the family cannot
        run, before building it (default: none)."""

    def block_paths(self, model: nn.Module) -> List[str]:
        """Module paths of the blocks, in execution order."""
        return [f'transformer_blocks.{i}'
                for i in range(len(model.transformer_blocks))]

    def patch(self, model: nn.Module) -> int:
        """Latent pixels per token side."""
        return model.config.patch_size

    def width(self, model: nn.Module) -> int:
        """Channels of the image tokens."""
        return model.inner_dim

    def text_dim(self, model: nn.Module) -> int:
        """Width of the text tokens the model takes."""
        return model.config.joint_attention_dim

    def pooled_dim(self, model: nn.Module) -> Optional[int]:
        """Width of the pooled text embedding (None: not taken)."""
        return model.config.pooled_projection_dim

    def check_size(self, model: nn.Module, latent_hw: Tuple[int, int],
                   vae_factor: int) -> None:
        """Refuse latents the model cannot place (default: any size)."""

    def map_layers(self, model: nn.Module,
                   blocks: List[int]) -> Dict[str, int]:
        """Processor names of the attention layers whose text->image maps
        are collected, for block indices ``blocks``."""
        return {f'transformer_blocks.{i}.attn.processor': i for i in blocks}

    def map_processor(self, processor, store, name: str):
        """The processor collecting maps on layer ``name`` (wrapping its
        ``processor``)."""
        from mmdiff.models.attention import JointMapProcessor
        return JointMapProcessor(processor, store, name, self.text_first)

    def tokens_to_map(self, tokens: Tensor, grid: Tuple[int, int]) -> Tensor:
        """``(B, h * w, C) -> (B, C, h, w)`` (row-major tokens)."""
        return tokens.transpose(1, 2).unflatten(-1, grid)

    def run(self, model: nn.Module, latents: Tensor, text: Tensor,
            pooled: Optional[Tensor], timestep: float,
            guidance: float) -> None:
        """One forward of the model on ``latents`` (the taps record it)."""
        raise NotImplementedError


class SD3Family(DiTFamily):
    """SD3 / SD3.5: image tokens from a patch embedding with a cropped
    position table (at most ``pos_embed_max_size`` tokens a side); the
    pipeline's timestep is ``sigma * 1000``."""
    name, class_name = 'sd3', 'SD3Transformer2DModel'

    def check_size(self, model, latent_hw, vae_factor) -> None:
        limit = model.config.pos_embed_max_size
        patch = self.patch(model)
        if limit is not None and max(latent_hw) // patch > limit:
            top = limit * patch * vae_factor
            raise ValueError(
                f'SD3 position embeddings cover at most {limit}x{limit} '
                f'tokens ({top}x{top} pixels), got an image padded to '
                f'{latent_hw[0] * vae_factor}x{latent_hw[1] * vae_factor}. '
                f'Fix: resize or crop the inputs to at most {top} pixels a '
                'side (the model has no position embeddings beyond).')

    def run(self, model, latents, text, pooled, timestep, guidance):
        t = torch.full((latents.shape[0], ), float(timestep),
                       device=latents.device)
        model(hidden_states=latents, encoder_hidden_states=text,
              pooled_projections=pooled, timestep=t, return_dict=False)


class FluxFamily(DiTFamily):
    """FLUX.1: 2x2-packed latents (``FluxPipeline._pack_latents``), rotary
    position ids (any size), timestep ``sigma`` and, for guidance-distilled
    models (FLUX.1-dev), a guidance scale."""
    name, class_name, text_first = 'flux', 'FluxTransformer2DModel', True

    def block_paths(self, model):
        return super().block_paths(model) + [
            f'single_transformer_blocks.{i}'
            for i in range(len(model.single_transformer_blocks))]

    def patch(self, model):
        return 2 * model.config.patch_size  # packing, then the embedder

    def map_layers(self, model, blocks):
        joint = len(model.transformer_blocks)
        single = [i for i in blocks if i >= joint]
        if single:
            raise ValueError(
                f'attn_blocks {single}: FLUX text->image maps come from its '
                f'{joint} joint (double-stream) blocks, indices 0-'
                f'{joint - 1}; the single-stream blocks attend over one '
                'mixed sequence. Fix: choose attn_blocks below '
                f'{joint}.')
        return super().map_layers(model, blocks)

    @staticmethod
    def pack(latents: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, H/2 * W/2, 4C)``, as
        ``FluxPipeline._pack_latents``."""
        batch, chans, height, width = latents.shape
        latents = latents.view(batch, chans, height // 2, 2, width // 2, 2)
        return latents.permute(0, 2, 4, 1, 3, 5).reshape(
            batch, (height // 2) * (width // 2), chans * 4)

    @staticmethod
    def image_ids(height: int, width: int, device) -> Tensor:
        """``(h * w, 3)`` ids ``(0, row, col)`` of the packed tokens, as
        ``FluxPipeline._prepare_latent_image_ids``."""
        ids = torch.zeros(height, width, 3, device=device)
        ids[..., 1] += torch.arange(height, device=device)[:, None]
        ids[..., 2] += torch.arange(width, device=device)[None, :]
        return ids.reshape(height * width, 3)

    def run(self, model, latents, text, pooled, timestep, guidance):
        batch, _, height, width = latents.shape
        device = latents.device
        t = torch.full((batch, ), timestep / 1000., device=device)
        g = torch.full((batch, ), float(guidance), device=device) \
            if model.config.guidance_embeds else None
        model(hidden_states=self.pack(latents), encoder_hidden_states=text,
              pooled_projections=pooled, timestep=t, guidance=g,
              img_ids=self.image_ids(height // 2, width // 2, device),
              txt_ids=torch.zeros(text.shape[1], 3, device=device),
              return_dict=False)


class PixArtFamily(DiTFamily):
    """PixArt-Sigma (and -alpha): sin-cos position embeddings recomputed
    for any size, T5 tokens through cross-attention, DDPM timesteps."""
    name, class_name, flow = 'pixart', 'PixArtTransformer2DModel', False
    output_index = 0

    def text_dim(self, model):
        return model.config.caption_channels

    def pooled_dim(self, model):
        return None

    def map_layers(self, model, blocks):
        return {f'transformer_blocks.{i}.attn2.processor': i for i in blocks}

    def map_processor(self, processor, store, name):
        from mmdiff.models.attention import MapCollectingAttnProcessor
        return MapCollectingAttnProcessor(store, name)

    def run(self, model, latents, text, pooled, timestep, guidance):
        batch = latents.shape[0]
        added = dict(resolution=None, aspect_ratio=None)  # Sigma pipeline
        if model.use_additional_conditions:  # alpha at 1024
            height, width = latents.shape[-2:]
            added = dict(
                resolution=latents.new_tensor([[height, width]] * batch),
                aspect_ratio=latents.new_tensor([[height / width]] * batch))
        t = torch.full((batch, ), int(timestep), device=latents.device,
                       dtype=torch.long)
        model(latents, encoder_hidden_states=text, timestep=t,
              added_cond_kwargs=added, return_dict=False)


class SanaFamily(PixArtFamily):
    """Sana: the DC-AE (``AutoencoderDC``, 32x downsampling, latents times
    ``scaling_factor`` only), 1x1 patches (stride 32), no position
    embeddings in the released 512/1024 px models (sin-cos, recomputed per
    size, in the 2K/4K ones): any size; linear self-attention (no
    probabilities: maps come from the softmax cross-attention ``attn2``
    to the Gemma-2 tokens); rectified flow, the transformer gets
    ``sigma * 1000 * timestep_scale`` (``SanaPipeline``); blocks return the
    image tokens. Sana-Sprint (``guidance_embeds``: SCM/TrigFlow
    timesteps) is refused."""
    name, class_name, flow = 'sana', 'SanaTransformer2DModel', True
    vae_class_name, single_file_vae = 'AutoencoderDC', False
    vae_posterior = False

    def vae_factor(self, vae):
        return 2**(len(vae.config.encoder_block_out_channels) - 1)

    def width(self, model):
        return (model.config.num_attention_heads
                * model.config.attention_head_dim)

    def check_config(self, config):
        if config.get('guidance_embeds'):
            raise ValueError(
                'This SanaTransformer2DModel has guidance_embeds=True '
                '(Sana-Sprint: SCM/TrigFlow timesteps, SanaSprintPipeline), '
                'which DiTBackbone does not run. Fix: a SanaPipeline model, '
                "e.g. 'Efficient-Large-Model/Sana_1600M_1024px_diffusers'.")

    def map_processor(self, processor, store, name):
        from mmdiff.models.attention import SanaCrossMapProcessor
        return SanaCrossMapProcessor(processor, store, name)

    def run(self, model, latents, text, pooled, timestep, guidance):
        t = torch.full((latents.shape[0], ),
                       float(timestep) * model.config.timestep_scale,
                       device=latents.device)
        model(latents, encoder_hidden_states=text, timestep=t,
              return_dict=False)


FAMILIES = {f.name: f for f in (SD3Family(), FluxFamily(), PixArtFamily(),
                                SanaFamily())}
BY_CLASS = {f.class_name: f for f in FAMILIES.values()}


def get_family(name: str) -> DiTFamily:
    """The adapter of ``family=name`` (or of a diffusers class name)."""
    family = FAMILIES.get(name) or BY_CLASS.get(name)
    if family is None:
        raise ValueError(
            f'Unknown DiT family {name!r}; supported: {sorted(FAMILIES)} '
            f'(diffusers {sorted(BY_CLASS)}).')
    return family
