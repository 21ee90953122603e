"""mmdiff: diffusion U-Net backbones (VPD-style) for mmsegmentation and mmdetection."""
from mmengine.config.utils import MODULE2PACKAGE

from .utils.checkpoint import register_checkpoint_safe_globals
from .version import __version__

# mmengine checkpoints must stay loadable under torch's weights-only default.
register_checkpoint_safe_globals()
# `mmdiff::<config>` bases: mmengine resolves a scope only for the packages
# in this table, to <package>/.mim/configs (shipped by setup.py).
MODULE2PACKAGE.setdefault('mmdiff', 'mmdiff')

__all__ = ['__version__']
