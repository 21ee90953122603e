"""Diffusion model loading, feature taps, added conditioning, tiny configs."""
from .added_cond import (resolve_pooled_text_embeds, sdxl_time_ids,
                         text_time_dims)
from .loading import (copy_weights, load_diffusion_configs,
                      load_diffusion_weights, load_unet_weights,
                      load_vae_weights, source_kind)
from .taps import FeatureTaps, TapsDone, vpd_default_taps
from .tiny_dit import (tiny_dc_ae_cfg, tiny_dit_configs, tiny_dit_vae_cfg,
                       tiny_flux_cfg, tiny_pixart_cfg, tiny_sana_cfg,
                       tiny_sd3_cfg)
from .tiny import (tiny_sd2_unet_cfg, tiny_sd_configs, tiny_sdxl_unet_cfg,
                   tiny_unet_cfg, tiny_vae_cfg)

__all__ = [
    'copy_weights', 'load_diffusion_configs', 'load_diffusion_weights',
    'load_unet_weights', 'load_vae_weights', 'source_kind', 'FeatureTaps',
    'TapsDone', 'vpd_default_taps', 'resolve_pooled_text_embeds',
    'sdxl_time_ids', 'text_time_dims', 'tiny_sd_configs', 'tiny_unet_cfg', 'tiny_vae_cfg',
    'tiny_sd2_unet_cfg', 'tiny_sdxl_unet_cfg', 'tiny_dit_configs',
    'tiny_dit_vae_cfg', 'tiny_flux_cfg', 'tiny_pixart_cfg', 'tiny_sd3_cfg',
    'tiny_sana_cfg', 'tiny_dc_ae_cfg'
]
