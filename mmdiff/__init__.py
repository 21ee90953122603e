"""mmdiff: diffusion U-Net backbones (VPD-style) for mmsegmentation and mmdetection."""
from .version import __version__

__all__ = ['__version__']
