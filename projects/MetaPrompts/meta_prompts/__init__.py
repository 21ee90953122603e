"""Meta Prompts (Wan et al. 2023) on mmdiff.

``MetaPromptsBackbone`` (+ ``MetaPromptsDepthHead``,
``LDMOptimWrapperConstructor``, ``PolyRampLR``) is the source's model
(fudan-zvg/meta-prompts@5628dd9); ``MetaPromptsVPD`` (with the
``MetaPrompts`` conditioner) is a lighter variant on mmdiff's diffusion
backbone (see README.md).
"""
from .backbone import MetaPromptsBackbone, PromptAdapter
from .depth_head import MetaPromptsDepthHead
from .meta_prompts_vpd import MetaPrompts, MetaPromptsVPD, PromptReweight
from .optim import LDMOptimWrapperConstructor
from .prompt_heads import DeconvDecoder, PromptDepthMaps, PromptLevelMaps
from .schedule import PolyRampLR

__all__ = [
    'DeconvDecoder', 'LDMOptimWrapperConstructor', 'MetaPrompts',
    'MetaPromptsBackbone', 'MetaPromptsDepthHead', 'MetaPromptsVPD',
    'PolyRampLR', 'PromptAdapter', 'PromptDepthMaps', 'PromptLevelMaps',
    'PromptReweight'
]
