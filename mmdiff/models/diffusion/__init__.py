"""Diffusion model loading, feature taps and tiny configs."""
from .loading import (copy_weights, load_diffusion_configs,
                      load_diffusion_weights, source_kind)
from .taps import FeatureTaps, TapsDone, vpd_default_taps
from .tiny import tiny_sd_configs, tiny_unet_cfg, tiny_vae_cfg

__all__ = [
    'copy_weights', 'load_diffusion_configs', 'load_diffusion_weights',
    'source_kind', 'FeatureTaps', 'TapsDone', 'vpd_default_taps',
    'tiny_sd_configs', 'tiny_unet_cfg', 'tiny_vae_cfg'
]
