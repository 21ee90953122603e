"""Text conditioning: prompts, the text encoder, class embeddings, adapter.

``prompts`` (class-name sets, templates) -> ``encoder`` (locate / load a
CLIP text encoder) -> ``embedding`` (compute K x D) -> ``embedding_file``
(save / load) -> ``cache`` (build once, reuse); ``adapter`` refines the
embeddings inside the backbone.
"""
from .adapter import TextAdapter
from .cache import default_cache_dir, get_or_build_class_embeddings
from .embedding import OUTPUTS, append_mean_row, compute_class_embeddings
from .embedding_file import load_class_embeddings, save_class_embeddings
from .encoder import load_text_encoder, locate_text_encoder
from .prompts import (CLASS_NAME_SETS, IMAGENET_TEMPLATES, TEMPLATE_SETS,
                      VPD_TEMPLATES, resolve_class_names, resolve_templates)

__all__ = [
    'TextAdapter', 'CLASS_NAME_SETS', 'TEMPLATE_SETS', 'VPD_TEMPLATES',
    'IMAGENET_TEMPLATES', 'resolve_class_names', 'resolve_templates',
    'OUTPUTS', 'compute_class_embeddings', 'save_class_embeddings',
    'load_class_embeddings', 'get_or_build_class_embeddings',
    'append_mean_row', 'default_cache_dir', 'load_text_encoder',
    'locate_text_encoder'
]
