"""Model wrappers for the hosts' segmentors."""
from .depth_tta import DepthTTAModel

__all__ = ['DepthTTAModel']
