"""Registered backbones: the generic diffusion backbone, VPD, the
diffusion-transformer backbone and the frozen-backbone feature cache."""
from .cached import CachedBackbone
from .diffusion_backbone import DiffusionBackbone
from .dit_backbone import DiTBackbone
from .vpd import VPD

__all__ = ['CachedBackbone', 'DiffusionBackbone', 'DiTBackbone', 'VPD']


def __getattr__(name: str):
    # compatibility: the host-model checks moved above the models
    if name == 'check_in_channels':
        from mmdiff.apis import check_in_channels
        return check_in_channels
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
