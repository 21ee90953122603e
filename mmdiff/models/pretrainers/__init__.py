"""Denoising-diffusion pretraining of the U-Net (no labels)."""
from .diffusion_pretrainer import DiffusionPretrainer

__all__ = ['DiffusionPretrainer']
