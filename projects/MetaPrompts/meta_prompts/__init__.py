"""Meta Prompts (Wan et al. 2023) on mmdiff's diffusion backbone."""
from .meta_prompts_vpd import MetaPrompts, MetaPromptsVPD, PromptReweight

__all__ = ['MetaPrompts', 'MetaPromptsVPD', 'PromptReweight']
