"""mmdiff: diffusion U-Net backbones (VPD-style) for mmsegmentation and mmdetection."""
import mmdiff_scope

from .utils.checkpoint import register_checkpoint_safe_globals
from .version import __version__

# mmengine checkpoints must stay loadable under torch's weights-only default.
register_checkpoint_safe_globals()
# `mmdiff::<config>` bases: mmengine resolves them to mmdiff/.mim/configs
# (shipped by setup.py) and builds them in the host's scope (mmdiff_scope.py).
mmdiff_scope.patch_mmengine_config()

__all__ = ['__version__']
