"""mmdiff: diffusion U-Net backbones (VPD-style) for mmsegmentation and mmdetection."""
from .utils.checkpoint import register_checkpoint_safe_globals
from .version import __version__

# mmengine checkpoints must stay loadable under torch's weights-only default.
register_checkpoint_safe_globals()

__all__ = ['__version__']
