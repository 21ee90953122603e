"""Registered backbones: the generic diffusion backbone, VPD, and the
frozen-backbone feature cache."""
from .cached import CachedBackbone
from .diffusion_backbone import DiffusionBackbone
from .vpd import VPD

__all__ = ['CachedBackbone', 'DiffusionBackbone', 'VPD']
