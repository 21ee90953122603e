"""VPD: Visual Perception with a pre-trained Diffusion model (Zhao et al.).

The generic :class:`DiffusionBackbone` conditioned on per-class text
embeddings refined by a :class:`TextAdapter`, with cross-attention maps
concatenated to the features (segmentation) or one embedding per image
(depth, ``class_embed_select``).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from mmdiff.models.text.adapter import TextAdapter
from mmdiff.registry import MODELS
from .class_embeds import EmbeddingSpec, resolve_class_embeddings
from .diffusion_backbone import DiffusionBackbone


@MODELS.register_module()
class VPD(DiffusionBackbone):
    """VPD backbone for mmseg / mmdet, on diffusers components.

    Defaults follow VPD's released code: VAE posterior mode, no latent
    scaling, ``t = 1``, no noise, features inside the U-Net decoder (ldm
    output blocks 1, 4, 7 and final, finest first), cross-attention maps of
    the down and up blocks at 1/16 and 1/32 of the image, without gradient
    (VPD's maps are stored inside ldm-checkpointed blocks, whose forward runs
    under no_grad; mmdiff detaches them).

    Args:
        pretrained (str, optional): Diffusers folder, hub id (e.g.
            ``'stable-diffusion-v1-5/stable-diffusion-v1-5'``) or original
            ``.ckpt``/``.safetensors``. None: random init from ``unet_cfg``
            and ``vae_cfg``. Defaults to None.
        unet_cfg (dict, optional): ``UNet2DConditionModel`` config for
            ``pretrained=None``. Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config for
            ``pretrained=None``. Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        class_embeddings (str | dict | Tensor, optional): ``(K, D)`` text
            embeddings: a ``.pth``/``.safetensors`` file; ``dict(class_names=
            [...] | 'ade20k', text_encoder=..., templates=..., output=
            'pooled' | 'tokens', cache_dir=...)`` computed and cached at
            build time; ``dict(num_classes=K, dim=D)`` random and learnable;
            None for a null prompt (one zero token). Defaults to None.
        text_adapter (bool): Refine the embeddings with a
            :class:`TextAdapter`. Defaults to True.
        gamma_init (float): Initial adapter gate. Defaults to 1e-4.
        class_embed_select (bool): Condition each image on one embedding,
            chosen by ``class_ids`` in :meth:`forward`; the mean embedding
            when the id is unknown (-1) or no ids are given. Defaults to
            False.
        use_attn (bool): Concatenate the K-channel cross-attention maps.
            Defaults to True.
        attn_grad (bool): Gradients through the maps. Defaults to False.
        taps (Sequence[str], optional): U-Net module paths. Defaults to None
            (VPD's four).
        timestep (int): Defaults to 1.
        scale_latents (bool): Defaults to False.
        latent_mode (str): Defaults to 'mode'.
        noise (str): Defaults to 'none'.
        noise_seed (int): Defaults to 0.
        freeze_unet (bool): Defaults to False.
        grad_checkpointing (bool): Defaults to False.
        init_cfg (dict | list[dict], optional): Defaults to None.
        **kwargs: Further :class:`DiffusionBackbone` arguments
            (``original_config``, ``unet_weights``, ``vae_weights``,
            ``text_embeds``, ``time_ids``, ``attn_places``,
            ``attn_min_downsample``, ``pad_shape``, ``pad_val``,
            ``amp_dtype``: autocast dtype on CPUs, ``lora``:
            LoRA fine-tuning of the U-Net, e.g. ``lora=dict(rank=8)``).
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 unet_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 local_files_only: bool = False,
                 class_embeddings: EmbeddingSpec = None,
                 text_adapter: bool = True,
                 gamma_init: float = 1e-4,
                 class_embed_select: bool = False,
                 use_attn: bool = True,
                 attn_grad: bool = False,
                 taps: Optional[Sequence[str]] = None,
                 timestep: int = 1,
                 scale_latents: bool = False,
                 latent_mode: str = 'mode',
                 noise: str = 'none',
                 noise_seed: int = 0,
                 freeze_unet: bool = False,
                 grad_checkpointing: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        super().__init__(
            pretrained=pretrained,
            unet_cfg=unet_cfg,
            vae_cfg=vae_cfg,
            local_files_only=local_files_only,
            taps=taps,
            use_attn=use_attn,
            attn_grad=attn_grad,
            timestep=timestep,
            scale_latents=scale_latents,
            latent_mode=latent_mode,
            noise=noise,
            noise_seed=noise_seed,
            freeze_unet=freeze_unet,
            grad_checkpointing=grad_checkpointing,
            init_cfg=init_cfg,
            **kwargs)
        self.class_embed_select = class_embed_select
        emb, learnable = resolve_class_embeddings(
            class_embeddings, self.cross_attention_dim, local_files_only)
        if emb is None:
            self.class_embeddings = None
        elif learnable:
            self.class_embeddings = nn.Parameter(emb)
        else:
            self.register_buffer('class_embeddings', emb)
        self.text_adapter = TextAdapter(self.cross_attention_dim,
                                        gamma_init) if text_adapter else None

    def finish_build(self) -> None:
        """Refuse maps over a single token, then compute feature info."""
        if self.use_attn and self.num_tokens < 2:
            raise ValueError(
                f'use_attn=True needs K >= 2 tokens per image (maps over a '
                f'single token are constant); {type(self).__name__} has '
                f'{self.num_tokens}. Pass class_embeddings with several '
                'classes and class_embed_select=False, or set '
                'use_attn=False.')
        super().finish_build()

    @property
    def num_tokens(self) -> int:
        """Channels of each attention map: K, or 1 with selection."""
        emb = self.class_embeddings
        if emb is None or self.class_embed_select:
            return 1
        return emb.shape[0]

    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None) -> Tensor:
        """Adapted class embeddings as U-Net encoder hidden states.

        Pooled embeddings ``(K, D)`` give ``K`` tokens per image, token
        embeddings ``(K, L, D)`` give ``K * L``; with ``class_embed_select``
        each image gets its own class's 1 (or L) tokens.

        Args:
            batch_size (int): Number of images.
            class_ids (Tensor, optional): ``(B, )`` indices into the class
                embeddings, used with ``class_embed_select``; -1 or None
                selects the mean embedding. Defaults to None.

        Returns:
            Tensor: ``(B, N, D)``.
        """
        emb = self.class_embeddings
        if emb is None:
            texts = super().condition(1)  # a null prompt: one zero token
        else:
            texts = emb if emb.ndim == 3 else emb[:, None]  # (K, L, D)
        if self.class_embed_select and emb is not None:
            table = torch.cat([texts, texts.mean(0, keepdim=True)])
            texts = table[self._select_rows(batch_size, class_ids)]
        if self.text_adapter is not None:
            texts = self.text_adapter(texts)
        if self.class_embed_select and emb is not None:
            return texts
        return texts.flatten(0, 1)[None].expand(batch_size, -1, -1)

    def reduce_maps(self, maps: Dict[int, Tensor]) -> Dict[int, Tensor]:
        """Sum the maps of each class's tokens (token embeddings only)."""
        emb = self.class_embeddings
        if emb is None or emb.ndim == 2 or self.class_embed_select:
            return maps
        num, length = emb.shape[:2]
        return {
            down: m.unflatten(1, (num, length)).sum(2)
            for down, m in maps.items()
        }

    def _select_rows(self, batch_size: int,
                     class_ids: Optional[Tensor]) -> Tensor:
        """Row per image: its class id, or the mean row (index K)."""
        num = self.class_embeddings.shape[0]
        device = self.class_embeddings.device
        if class_ids is None:
            return torch.full((batch_size, ), num, device=device,
                              dtype=torch.long)
        ids = torch.as_tensor(class_ids, device=device).long().view(-1)
        if ids.numel() != batch_size:
            raise ValueError(f'class_ids has {ids.numel()} entries for '
                             f'{batch_size} images.')
        if (ids >= num).any():
            raise ValueError(f'class_ids {ids.tolist()} out of range for '
                             f'{num} class embeddings.')
        return torch.where(ids < 0, torch.full_like(ids, num), ids)
