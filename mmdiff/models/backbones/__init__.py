"""Registered backbones: the generic diffusion backbone, VPD, the
diffusion-transformer backbone and the frozen-backbone feature cache."""
from .cached import CachedBackbone
from .diffusion_backbone import DiffusionBackbone
from .dit_backbone import DiTBackbone
from .vpd import VPD

__all__ = ['CachedBackbone', 'DiffusionBackbone', 'DiTBackbone', 'VPD']
