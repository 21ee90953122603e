"""Cross-attention map collection for diffusion backbones."""
from .cross import SanaCrossMapProcessor, sana_cross_probs
from .joint import JointMapProcessor, joint_text_probs
from .processor import (MapCollectingAttnProcessor, attention_probs,
                        check_replaceable, cross_attention_layers,
                        install_map_processors, set_processors)
from .store import AttentionStore

__all__ = [
    'AttentionStore', 'JointMapProcessor', 'MapCollectingAttnProcessor',
    'attention_probs', 'check_replaceable', 'cross_attention_layers',
    'install_map_processors', 'joint_text_probs', 'SanaCrossMapProcessor',
    'sana_cross_probs', 'set_processors'
]
