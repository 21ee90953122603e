"""Registered backbones: the generic diffusion backbone, VPD, and the
frozen-backbone feature cache."""
from .cached import CachedBackbone
from .channels import check_in_channels
from .diffusion_backbone import DiffusionBackbone
from .vpd import VPD

__all__ = ['CachedBackbone', 'DiffusionBackbone', 'VPD', 'check_in_channels']
