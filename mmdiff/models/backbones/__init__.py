"""Registered backbones: the generic diffusion backbone and VPD."""
from .diffusion_backbone import DiffusionBackbone
from .vpd import VPD

__all__ = ['DiffusionBackbone', 'VPD']
