"""A tiny, seeded VPD and seeded test images."""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from mmdiff.models.diffusion import tiny_sd_configs


def tiny_sd_model(cls: type, seed: int = 0,
                  cross_attention_dim: Optional[int] = None, **kwargs):
    """``cls(unet_cfg=..., vae_cfg=..., **kwargs)`` on the tiny
    SD-shaped U-Net and VAE (:func:`~mmdiff.models.diffusion.tiny_sd_configs`),
    with seeded random weights (built in ``__init__``; ``init_weights`` not
    called): any model that takes ``unet_cfg``/``vae_cfg`` (the backbones,
    the projects' models).

    Args:
        cls (type): The model class.
        seed (int): Seed of the weights. Defaults to 0.
        cross_attention_dim (int, optional): Token width. Defaults to None
            (the tiny U-Net's, 32).
        **kwargs: Further ``cls`` arguments (``unet_cfg``/``vae_cfg``
            replace the tiny ones).
    """
    unet_cfg, vae_cfg = tiny_sd_configs(cross_attention_dim)
    kwargs = dict(dict(unet_cfg=unet_cfg, vae_cfg=vae_cfg), **kwargs)
    torch.manual_seed(seed)
    return cls(**kwargs)


def tiny_vpd(num_classes: int = 4, seed: int = 0, **kwargs):
    """A tiny SD-shaped :class:`~mmdiff.models.backbones.VPD` with seeded
    random weights (built in ``__init__``; ``init_weights`` not called).

    Args:
        num_classes (int): Random class embeddings ``K`` (width 32, the
            tiny U-Net's cross-attention width). Defaults to 4.
        seed (int): Seed of the weights. Defaults to 0.
        **kwargs: Further :class:`VPD` arguments (they override the above,
            e.g. ``class_embeddings=None``).

    Returns:
        VPD
    """
    from mmdiff.models.backbones import VPD
    args = dict(class_embeddings=dict(num_classes=num_classes, dim=32))
    args.update(kwargs)
    return tiny_sd_model(VPD, seed, **args)


def demo_images(batch: int = 2, size: Union[int, Tuple[int, int]] = 64,
                seed: int = 0) -> Tensor:
    """Seeded images ``(batch, 3, H, W)`` uniform in [-1, 1] (the
    backbone's input range); ``size`` is ``H = W`` or ``(H, W)``."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=gen) * 2 - 1


def save_tiny_dit(folder: str, family: str, seed: int = 0) -> tuple:
    """A tiny random diffusion transformer of ``family`` and its VAE,
    saved as a diffusers pipeline folder (``transformer/``, ``vae/``),
    every layer seeded non-trivially (diffusers zero-initialises some).

    Returns:
        tuple: ``(transformer, vae)`` as saved, in eval.
    """
    from mmdiff.models.diffusion import tiny_dit_configs
    from mmdiff.models.diffusion.dit import get_family
    from .ldm import randomise
    tcfg, vcfg = tiny_dit_configs(family)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    adapter = get_family(family)
    transformer = randomise(adapter.model_class().from_config(tcfg),
                            gen).eval()
    vae = randomise(adapter.vae_class().from_config(vcfg), gen).eval()
    transformer.save_pretrained(f'{folder}/transformer')
    vae.save_pretrained(f'{folder}/vae')
    return transformer, vae
