"""Registered necks: ViTDet's simple feature pyramid for DiT features."""
from .simple_feature_pyramid import SimpleFeaturePyramid

__all__ = ['SimpleFeaturePyramid']
