"""Cross-attention map collection for diffusion backbones."""
from .processor import (MapCollectingAttnProcessor, attention_probs,
                        check_replaceable, cross_attention_layers,
                        install_map_processors, set_processors)
from .store import AttentionStore

__all__ = [
    'AttentionStore', 'MapCollectingAttnProcessor', 'attention_probs',
    'check_replaceable', 'cross_attention_layers', 'install_map_processors',
    'set_processors'
]
