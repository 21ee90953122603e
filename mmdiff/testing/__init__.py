"""Test and benchmark helpers (as ``mmdet.testing``): tiny models, seeded
images, the ldm reference models (Stability-AI's ldm, PyPI
stable-diffusion-sdkit 2.1.5) and a tiny offline CLIP and T5.

Nothing here downloads anything; the ldm helpers need the optional
``stable-diffusion-sdkit`` package (``ldm``), imported on use.
"""
from .clip import build_tiny_clip
from .models import demo_images, save_tiny_dit, tiny_sd_model, tiny_vpd
from .t5 import build_tiny_t5

__all__ = [
    'build_tiny_clip', 'build_tiny_t5', 'demo_images', 'save_tiny_dit',
    'tiny_sd_model', 'tiny_vpd'
]
