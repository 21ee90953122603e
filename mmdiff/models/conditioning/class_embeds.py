"""Resolve a ``class_embeddings`` argument (VPD, :class:`ClassPrompts`)
into a tensor."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

EmbeddingSpec = Optional[Union[str, dict, Tensor]]


#: Keys of ``dict(num_classes=K, ...)``: random, learnable embeddings.
RANDOM_KEYS = ('num_classes', 'dim', 'std', 'learnable')


def _check_keys(spec: dict) -> None:
    """Refuse unknown keys (a typo would otherwise be ignored)."""
    import inspect

    from mmdiff.models.text import (compute_class_embeddings,
                                    get_or_build_class_embeddings)
    if 'num_classes' in spec:
        allowed, form = set(RANDOM_KEYS), 'dict(num_classes=K, dim=D)'
    elif 'class_names' in spec:
        allowed = set()
        for fn in (get_or_build_class_embeddings, compute_class_embeddings):
            allowed |= {name for name, p in
                        inspect.signature(fn).parameters.items()
                        if p.kind is not p.VAR_KEYWORD}
        allowed -= {'return_metadata'}
        form = 'dict(class_names=..., text_encoder=...)'
    else:
        return  # refused below with the accepted forms
    unknown = sorted(set(spec) - allowed)
    if 'num_classes' in spec and 'class_names' in spec:
        raise ValueError(
            f'class_embeddings mixes dict(num_classes=K, dim=D) (random, '
            f'learnable) with dict(class_names=..., text_encoder=...) keys '
            f'{unknown}: a config merge keeps the base dict\'s keys. Fix: '
            'replace the whole dict (class_embeddings=dict(_delete_=True, '
            'num_classes=K, dim=D)) or drop num_classes.')
    if unknown:
        raise ValueError(
            f'Unknown keys {unknown} in class_embeddings={form}; allowed: '
            f'{sorted(allowed)}. Fix: correct the spelling (e.g. '
            "'learnable', not 'learnabel').")


def resolve_class_embeddings(spec: EmbeddingSpec, dim: int,
                             local_files_only: bool = False
                             ) -> Tuple[Optional[Tensor], bool]:
    """Turn the user's ``class_embeddings`` value into a tensor.

    Args:
        spec: One of
            - a ``.pth``/``.safetensors`` path;
            - ``dict(class_names=..., text_encoder=..., templates=...,
              output='pooled'|'tokens', cache_dir=...,
              text_encoder_subfolder=...)``, computed (and cached) by
              ``mmdiff.models.text.cache`` with a CLIP or T5 encoder; a
              list of text encoders concatenates their embeddings (SDXL),
              ``text_encoder_subfolder`` then one string or one per
              encoder;
            - ``dict(num_classes=K, dim=D)``: random, learnable embeddings;
            - a tensor ``(K, D)``;
            - None: no class embeddings (null prompt).
        dim (int): The model's text width (U-Net: ``cross_attention_dim``;
            DiT: ``joint_attention_dim`` / ``caption_channels``).
        local_files_only (bool): Passed to the text encoder loader unless the
            dict sets it. Defaults to False.

    Returns:
        tuple[Tensor | None, bool]: Embeddings ``(K, D)`` (pooled) or
        ``(K, L, D)`` (token features), and whether they are learnable.
    """
    learnable = False
    if isinstance(spec, dict):
        _check_keys(spec)
    if spec is None:
        return None, False
    if isinstance(spec, str):
        from mmdiff.models.text import load_class_embeddings
        emb = load_class_embeddings(spec)[0].float()
    elif isinstance(spec, Tensor):
        emb = spec.detach().float()
    elif isinstance(spec, dict) and 'num_classes' in spec:
        num, emb_dim = spec['num_classes'], spec.get('dim', dim)
        emb = torch.randn(num, emb_dim) * spec.get('std', 0.02)
        learnable = spec.get('learnable', True)
    elif isinstance(spec, dict) and 'class_names' in spec:
        from mmdiff.models.text import get_or_build_class_embeddings
        kwargs = dict(spec)
        kwargs.setdefault('local_files_only', local_files_only)
        encoders = kwargs.pop('text_encoder', None)
        subs = kwargs.pop('text_encoder_subfolder', None)
        if not isinstance(encoders, (list, tuple)):
            encoders = [encoders]
        if not isinstance(subs, (list, tuple)):
            subs = [subs] * len(encoders)
        if len(subs) != len(encoders):
            raise ValueError(
                f'text_encoder_subfolder={list(subs)} has {len(subs)} '
                f'entries for {len(encoders)} text encoders. Fix: one '
                'subfolder per encoder, or one string for all.')
        # Several encoders (SDXL: CLIP ViT-L/14 + ViT-bigG/14, 768 + 1280
        # = 2048): their embeddings are concatenated along the width.
        emb = torch.cat([
            get_or_build_class_embeddings(
                text_encoder=enc, text_encoder_subfolder=sub,
                **kwargs).detach().float()
            for enc, sub in zip(encoders, subs)
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
            f'class embeddings have dim {emb.shape[-1]} but the model\'s '
            f'text width is {dim} (U-Net: cross_attention_dim; '
            'DiTBackbone: the transformer\'s joint_attention_dim, PixArt: '
            'caption_channels). Fix: build the embeddings with the model\'s '
            f'own text encoder, of width {dim} (SD1.x: CLIP ViT-L/14, 768; '
            'SD2.x: OpenCLIP ViT-H/14, 1024; SDXL: a list of CLIP '
            'ViT-L/14 and ViT-bigG/14, 2048; SD3 / SD3.5, FLUX.1, '
            'PixArt-Sigma: their T5-XXL, 4096, with text_encoder_subfolder='
            "'text_encoder_3' / 'text_encoder_2' / 'text_encoder'), or use "
            f'a model whose text width is {emb.shape[-1]}.')
    return emb, learnable
