"""Conditioning components: what a diffusion backbone's U-Net attends to.

:class:`Conditioner` is the base; :class:`NullPrompt` (one zero token),
:class:`ClassPrompts` (VPD's class embeddings + text adapter) and
:class:`CaptionPrompts` (each image's caption) are registered, as are the
projects' (e.g. ``MetaPrompts``). A backbone takes one as
``conditioner=dict(type=...)``.
"""
from .base import (ConditionedBackbone, Conditioner, NullPrompt,
                   build_conditioner)
from .caption_prompts import CaptionPrompts
from .class_embeds import EmbeddingSpec, resolve_class_embeddings
from .class_prompts import ClassPrompts

__all__ = [
    'ConditionedBackbone', 'Conditioner', 'NullPrompt', 'build_conditioner', 'ClassPrompts',
    'CaptionPrompts',
    'EmbeddingSpec', 'resolve_class_embeddings'
]
