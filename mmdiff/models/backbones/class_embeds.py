"""Resolve VPD's ``class_embeddings`` argument into a tensor."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

EmbeddingSpec = Optional[Union[str, dict, Tensor]]


def resolve_class_embeddings(spec: EmbeddingSpec, dim: int,
                             local_files_only: bool = False
                             ) -> Tuple[Optional[Tensor], bool]:
    """Turn the user's ``class_embeddings`` value into a tensor.

    Args:
        spec: One of
            - a ``.pth``/``.safetensors`` path;
            - ``dict(class_names=..., text_encoder=..., templates=...,
              output='pooled'|'tokens', cache_dir=...)``, computed (and
              cached) by ``mmdiff.models.text.class_embeddings``; a list of
              text encoders concatenates their embeddings (SDXL);
            - ``dict(num_classes=K, dim=D)``: random, learnable embeddings;
            - a tensor ``(K, D)``;
            - None: no class embeddings (null prompt).
        dim (int): The U-Net's ``cross_attention_dim``.
        local_files_only (bool): Passed to the text encoder loader unless the
            dict sets it. Defaults to False.

    Returns:
        tuple[Tensor | None, bool]: Embeddings ``(K, D)`` (pooled) or
        ``(K, L, D)`` (token features), and whether they are learnable.
    """
    learnable = False
    if spec is None:
        return None, False
    if isinstance(spec, str):
        from mmdiff.models.text.class_embeddings import \
            load_class_embeddings
        emb = load_class_embeddings(spec)[0].float()
    elif isinstance(spec, Tensor):
        emb = spec.detach().float()
    elif isinstance(spec, dict) and 'num_classes' in spec:
        num, emb_dim = spec['num_classes'], spec.get('dim', dim)
        emb = torch.randn(num, emb_dim) * spec.get('std', 0.02)
        learnable = spec.get('learnable', True)
    elif isinstance(spec, dict) and 'class_names' in spec:
        from mmdiff.models.text.class_embeddings import \
            get_or_build_class_embeddings
        kwargs = dict(spec)
        kwargs.setdefault('local_files_only', local_files_only)
        encoders = kwargs.pop('text_encoder', None)
        if not isinstance(encoders, (list, tuple)):
            encoders = [encoders]
        # Several encoders (SDXL: CLIP ViT-L/14 + ViT-bigG/14, 768 + 1280
        # = 2048): their embeddings are concatenated along the width.
        emb = torch.cat([
            get_or_build_class_embeddings(text_encoder=enc,
                                          **kwargs).detach().float()
            for enc in encoders
        ], dim=-1)
    else:
        raise TypeError(
            'class_embeddings must be a .pth/.safetensors path, '
            'dict(class_names=..., text_encoder=...), dict(num_classes=K, '
            f'dim=D), a tensor or None; got {spec!r}.')
    if emb.ndim not in (2, 3) or emb.shape[0] < 1:
        raise ValueError(f'class embeddings must have shape (K, D) or '
                         f'(K, L, D), got {tuple(emb.shape)}.')
    if emb.shape[-1] != dim:
        raise ValueError(
            f'class embeddings have dim {emb.shape[-1]} but the U-Net\'s '
            f'cross_attention_dim is {dim}. Fix: build the embeddings with a '
            f'text encoder of width {dim} (SD1.x: CLIP ViT-L/14, 768; SD2.x: '
            'OpenCLIP ViT-H/14, 1024; SDXL: a list of CLIP ViT-L/14 '
            'and ViT-bigG/14, 2048), or use a U-Net whose '
            f'cross_attention_dim is {emb.shape[-1]}.')
    return emb, learnable
