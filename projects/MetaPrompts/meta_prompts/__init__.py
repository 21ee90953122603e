"""Meta Prompts (Wan et al. 2023) on mmdiff.

``MetaPromptsBackbone`` (+ ``MetaPromptsDepthHead``,
``LDMOptimWrapperConstructor``) is the source's model
(fudan-zvg/meta-prompts@5628dd9); ``MetaPromptsVPD`` is a lighter variant
on mmdiff's VPD backbone (see README.md).
"""
from .backbone import MetaPromptsBackbone, PromptAdapter
from .depth_head import MetaPromptsDepthHead
from .meta_prompts_vpd import MetaPromptsVPD
from .optim import LDMOptimWrapperConstructor
from .prompt_heads import DeconvDecoder, PromptDepthMaps, PromptLevelMaps
from .schedule import PolyRampLR

__all__ = [
    'DeconvDecoder', 'LDMOptimWrapperConstructor', 'MetaPromptsBackbone',
    'MetaPromptsDepthHead', 'MetaPromptsVPD', 'PromptAdapter',
    'PolyRampLR', 'PromptDepthMaps', 'PromptLevelMaps'
]
