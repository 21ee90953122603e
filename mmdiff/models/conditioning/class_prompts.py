"""VPD's conditioning: per-class text embeddings refined by a text adapter,
for every image (segmentation) or one class per image (depth)."""
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from mmdiff.models.text.adapter import TextAdapter
from mmdiff.registry import MODELS
from .base import Conditioner
from .class_embeds import EmbeddingSpec, resolve_class_embeddings


@MODELS.register_module()
class ClassPrompts(Conditioner):
    """Class embeddings (+ VPD's :class:`TextAdapter`) as tokens.

    Pooled embeddings ``(K, D)`` give ``K`` tokens per image, token
    embeddings ``(K, L, D)`` give ``K * L`` (their maps summed per class by
    :meth:`reduce_maps`); with ``select`` each image gets its own class's
    1 (or L) tokens, the mean embedding when its id is unknown (-1) or no
    ids are given.

    Args:
        dim (int): The U-Net's ``cross_attention_dim`` (from the backbone).
        class_embeddings (str | dict | Tensor): ``(K, D)`` text embeddings:
            a ``.pth``/``.safetensors`` file; ``dict(class_names=[...] |
            'ade20k', text_encoder=..., templates=..., output='pooled' |
            'tokens', cache_dir=...)`` computed and cached at build time;
            ``dict(num_classes=K, dim=D)`` random and learnable; a tensor.
        text_adapter (bool): Refine the embeddings with a
            :class:`TextAdapter`. Defaults to True.
        gamma_init (float): Initial adapter gate. Defaults to 1e-4 (VPD).
        select (bool): One embedding per image, chosen by ``class_ids``
            (VPD's depth setting). Defaults to False.
        local_files_only (bool): From the backbone. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, dim: int, class_embeddings: EmbeddingSpec,
                 text_adapter: bool = True, gamma_init: float = 1e-4,
                 select: bool = False, local_files_only: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(dim, local_files_only, init_cfg)
        if class_embeddings is None:
            raise ValueError(
                'ClassPrompts needs class_embeddings; for no text use '
                "conditioner=dict(type='NullPrompt') (VPD: "
                'class_embeddings=None).')
        emb, learnable = resolve_class_embeddings(class_embeddings, self.dim,
                                                  local_files_only)
        if learnable:
            self.class_embeddings = nn.Parameter(emb)
        else:
            self.register_buffer('class_embeddings', emb)
        self.select = select
        self.text_adapter = TextAdapter(self.dim, gamma_init) \
            if text_adapter else None

    @property
    def takes_class_ids(self) -> bool:
        return self.select

    @property
    def num_classes(self) -> int:
        return self.class_embeddings.shape[0]

    @property
    def num_tokens(self) -> int:
        """Channels of each attention map: K, or 1 with ``select``."""
        return 1 if self.select else self.num_classes

    def forward(self, batch_size: int, class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        """Adapted class embeddings ``(B, N, D)``."""
        emb = self.class_embeddings
        texts = emb if emb.ndim == 3 else emb[:, None]  # (K, L, D)
        if self.select:
            table = torch.cat([texts, texts.mean(0, keepdim=True)])
            texts = table[self._select_rows(batch_size, class_ids)]
        if self.text_adapter is not None:
            texts = self.text_adapter(texts)
        if self.select:
            return texts
        return texts.flatten(0, 1)[None].expand(batch_size, -1, -1)

    def reduce_maps(self, maps: Dict[int, Tensor]) -> Dict[int, Tensor]:
        """Sum the maps of each class's tokens (token embeddings only)."""
        emb = self.class_embeddings
        if emb.ndim == 2 or self.select:
            return maps
        num, length = emb.shape[:2]
        return {
            down: m.unflatten(1, (num, length)).sum(2)
            for down, m in maps.items()
        }

    def _select_rows(self, batch_size: int,
                     class_ids: Optional[Tensor]) -> Tensor:
        """Row per image: its class id, or the mean row (index K)."""
        num = self.num_classes
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
