"""Meta Prompts (Wan et al. 2023) on mmdiff's VPD backbone."""
from .meta_prompts_vpd import MetaPromptsVPD

__all__ = ['MetaPromptsVPD']
