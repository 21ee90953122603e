"""Diffusion Hyperfeatures-style multi-timestep / noise-ensemble VPD."""
from .hyperfeature_vpd import HyperfeatureVPD

__all__ = ['HyperfeatureVPD']
