"""Resolve VPD's ``class_embeddings`` argument into a ``(K, D)`` tensor."""
import os.path as osp
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

EmbeddingSpec = Optional[Union[str, dict, Tensor]]
_FILE_KEYS = ('class_embeddings', 'embeddings')


def load_embedding_file(path: str) -> Tensor:
    """Load ``(K, D)`` embeddings from a ``.pth`` or ``.safetensors`` file.

    The file holds a bare tensor or a dict with key ``'class_embeddings'``
    or ``'embeddings'``.

    Args:
        path (str): File path.

    Returns:
        Tensor: Float embeddings ``(K, D)``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'class_embeddings file {path!r} not found. Build one with '
            'mmdiff.models.text.class_embeddings (from class names and a CLIP'
            ' text encoder) or pass class_embeddings=dict(class_names=..., '
            'text_encoder=...).')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        data = load_file(path)
    else:
        data = torch.load(path, map_location='cpu', weights_only=True)
    if isinstance(data, dict):
        key = next((k for k in _FILE_KEYS if k in data), None)
        if key is None:
            raise KeyError(f'{path!r} holds keys {sorted(data)[:10]}; '
                           f'expected a tensor or one of {_FILE_KEYS}.')
        data = data[key]
    if not isinstance(data, Tensor):
        raise TypeError(f'{path!r} does not hold a tensor.')
    return data.float()


def resolve_class_embeddings(spec: EmbeddingSpec, dim: int,
                             local_files_only: bool = False
                             ) -> Tuple[Optional[Tensor], bool]:
    """Turn the user's ``class_embeddings`` value into a tensor.

    Args:
        spec: One of
            - a ``.pth``/``.safetensors`` path;
            - ``dict(class_names=..., text_encoder=..., templates=...,
              output='pooled'|'tokens', cache_dir=...)``, computed (and
              cached) by ``mmdiff.models.text.class_embeddings``;
            - ``dict(num_classes=K, dim=D)``: random, learnable embeddings;
            - a tensor ``(K, D)``;
            - None: no class embeddings (null prompt).
        dim (int): The U-Net's ``cross_attention_dim``.
        local_files_only (bool): Passed to the text encoder loader unless the
            dict sets it. Defaults to False.

    Returns:
        tuple[Tensor | None, bool]: Embeddings ``(K, D)`` and whether they
        are learnable.
    """
    learnable = False
    if spec is None:
        return None, False
    if isinstance(spec, str):
        emb = load_embedding_file(spec)
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
        emb = get_or_build_class_embeddings(**kwargs).detach().float()
    else:
        raise TypeError(
            'class_embeddings must be a .pth/.safetensors path, '
            'dict(class_names=..., text_encoder=...), dict(num_classes=K, '
            f'dim=D), a tensor or None; got {spec!r}.')
    if emb.ndim != 2 or emb.shape[0] < 1:
        raise ValueError(f'class embeddings must have shape (K, D), got '
                         f'{tuple(emb.shape)}.')
    if emb.shape[1] != dim:
        raise ValueError(
            f'class embeddings have dim {emb.shape[1]} but the U-Net\'s '
            f'cross_attention_dim is {dim}. Fix: build the embeddings with a '
            f'text encoder of width {dim} (SD1.x: CLIP ViT-L/14, 768; SD2.x: '
            'OpenCLIP ViT-H/14, 1024), or use a U-Net whose '
            f'cross_attention_dim is {emb.shape[1]}.')
    return emb, learnable
