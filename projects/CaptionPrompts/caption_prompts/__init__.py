"""TADP-style per-image caption prompts on mmdiff's VPD backbone."""
from .caption_vpd import CaptionVPD
from .segmentor import CaptionEncoderDecoder

__all__ = ['CaptionVPD', 'CaptionEncoderDecoder']
