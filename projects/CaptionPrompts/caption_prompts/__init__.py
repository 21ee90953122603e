"""TADP-style per-image caption prompts on mmdiff's diffusion backbone."""
from .caption_vpd import CaptionVPD

__all__ = ['CaptionVPD']
