"""What the diffusion backbones (U-Net and transformer) share around their
frozen parts: the VAE encoding and the freezing rule."""
from typing import Sequence

import torch
from torch import Tensor, nn


def encode_latents(vae: nn.Module, images: Tensor, latent_mode: str,
                   trainable: bool = False) -> Tensor:
    """Raw VAE latents (posterior ``'mode'`` or ``'sample'``) of images in
    [-1, 1]; no gradient unless ``trainable`` (``freeze_vae=False``)."""
    param = next(vae.parameters())
    with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
        dist = vae.encode(images.to(param.dtype)).latent_dist
        return dist.mode() if latent_mode == 'mode' else dist.sample()


def freeze(frozen: Sequence[nn.Module], model: nn.Module,
           unused: Sequence[str]) -> None:
    """Put ``frozen`` in eval without gradients, and freeze the parameters
    of ``model`` named in ``unused`` (no output depends on them, so DDP
    needs no ``find_unused_parameters``)."""
    for module in frozen:
        module.eval()
        module.requires_grad_(False)
    for name in unused:
        model.get_parameter(name).requires_grad = False
