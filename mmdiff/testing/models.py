"""A tiny, seeded VPD and seeded test images."""
import torch
from torch import Tensor

from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg


def tiny_vpd(num_classes: int = 4, seed: int = 0, **kwargs):
    """A tiny SD-shaped :class:`~mmdiff.models.backbones.VPD`, weights
    seeded and initialised (``init_weights`` called).

    Args:
        num_classes (int): Random class embeddings ``K`` (width 32, the
            tiny U-Net's cross-attention width). Defaults to 4.
        seed (int): Seed of the weights. Defaults to 0.
        **kwargs: Further :class:`VPD` arguments (default ``use_attn=True``).

    Returns:
        VPD
    """
    from mmdiff.models.backbones import VPD
    kwargs.setdefault('use_attn', True)
    kwargs.setdefault('class_embeddings', dict(num_classes=num_classes,
                                               dim=32))
    torch.manual_seed(seed)
    model = VPD(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(), **kwargs)
    model.init_weights()
    return model


def demo_images(batch: int = 2, size: int = 64, seed: int = 0) -> Tensor:
    """Seeded images ``(batch, 3, size, size)`` uniform in [-1, 1] (the
    backbone's input range)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
