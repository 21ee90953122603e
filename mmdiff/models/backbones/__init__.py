"""Registered backbones: the generic diffusion backbone and VPD."""
from .channels import check_in_channels
from .diffusion_backbone import DiffusionBackbone
from .vpd import VPD

__all__ = ['DiffusionBackbone', 'VPD', 'check_in_channels']
