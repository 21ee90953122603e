"""Model wrappers for the hosts' segmentors."""
from .depth_tta import DepthTTAModel
from .metainfo import MetainfoEncoderDecoder

__all__ = ['DepthTTAModel', 'MetainfoEncoderDecoder']
