"""SDXL's added conditioning (``addition_embed_type='text_time'``).

An SDXL U-Net takes, besides the per-token ``encoder_hidden_states``, an
``added_cond_kwargs`` dict: ``text_embeds``, the pooled embedding of the
prompt (CLIP ViT-bigG/14 ``text_embeds``, 1280-d), and ``time_ids``, the
six micro-conditioning numbers ``(orig_h, orig_w, crop_top, crop_left,
target_h, target_w)`` (five with an aesthetic score for the refiner).
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

PooledSpec = Optional[Union[str, Tensor, dict]]
TimeIdsSpec = Union[str, Sequence[float]]


def text_time_dims(unet_config, num_ids: int = 6) -> Optional[Tuple[int, int]]:
    """``(text_dim, num_ids)`` of a ``text_time`` U-Net, else None.

    Args:
        unet_config: A ``UNet2DConditionModel`` config.
        num_ids (int): Micro-conditioning numbers (SDXL base: 6).
            Defaults to 6.

    Returns:
        tuple[int, int] | None: Width of ``text_embeds`` and of
        ``time_ids``.
    """
    if unet_config.addition_embed_type != 'text_time':
        return None
    text_dim = unet_config.projection_class_embeddings_input_dim - \
        num_ids * unet_config.addition_time_embed_dim
    if text_dim <= 0:
        raise ValueError(
            f'projection_class_embeddings_input_dim='
            f'{unet_config.projection_class_embeddings_input_dim} leaves no '
            f'room for {num_ids} time ids of width '
            f'{unet_config.addition_time_embed_dim}; pass time_ids with the '
            'number of ids the U-Net was trained with.')
    return text_dim, num_ids


def resolve_pooled_text_embeds(spec: PooledSpec,
                               dim: int) -> Tuple[Tensor, bool]:
    """The pooled prompt embedding ``(dim, )`` and whether it is learnable.

    Args:
        spec: None (zeros, SDXL's "empty prompt" with
            ``force_zeros_for_empty_prompt``); a tensor or a
            ``.pth``/``.safetensors`` file holding a ``(dim, )`` or
            ``(1, dim)`` tensor (e.g. ``pooled_prompt_embeds`` of
            ``StableDiffusionXLPipeline.encode_prompt``); or
            ``dict(learnable=True)`` for a learned embedding (zero init).
        dim (int): Expected width.

    Returns:
        tuple[Tensor, bool]
    """
    if spec is None:
        return torch.zeros(dim), False
    if isinstance(spec, dict):
        if set(spec) != {'learnable'} or not spec['learnable']:
            raise ValueError(f'text_embeds dict must be dict(learnable=True);'
                             f' got {spec!r}.')
        return torch.zeros(dim), True
    if isinstance(spec, str):
        spec = _load_tensor(spec)
    if not isinstance(spec, Tensor):
        raise TypeError('text_embeds must be None, a tensor, a .pth/'
                        f'.safetensors path or dict(learnable=True); got '
                        f'{type(spec).__name__}.')
    emb = spec.detach().float().reshape(-1)
    if emb.numel() != dim:
        raise ValueError(
            f'text_embeds has {tuple(spec.shape)} values but the U-Net '
            f'expects a pooled embedding of width {dim} (SDXL: 1280, CLIP '
            'ViT-bigG/14 text_embeds).')
    return emb, False


def sdxl_time_ids(spec: TimeIdsSpec, batch_size: int,
                  image_hw: Tuple[int, int], device) -> Tensor:
    """``time_ids`` for a batch.

    Args:
        spec: ``'input_size'``: ``(H, W, 0, 0, H, W)`` of the (padded) image
            the U-Net sees, i.e. an uncropped image shown at its own size;
            or a fixed sequence of numbers (e.g. ``(1024, 1024, 0, 0, 1024,
            1024)``).
        batch_size (int): Images.
        image_hw (tuple[int, int]): Height and width of the U-Net's image.
        device: Target device.

    Returns:
        Tensor: ``(B, num_ids)``.
    """
    if isinstance(spec, str):
        if spec != 'input_size':
            raise ValueError(f"time_ids must be 'input_size' or a sequence "
                             f'of numbers, got {spec!r}.')
        height, width = image_hw
        values = [height, width, 0, 0, height, width]
    else:
        values = list(spec)
    ids = torch.tensor(values, dtype=torch.float32, device=device)
    return ids[None].expand(batch_size, -1)


def pooled_text_embeds(unet_config, text_embeds: PooledSpec,
                       time_ids: TimeIdsSpec
                       ) -> Optional[Union[Tensor, nn.Parameter]]:
    """The backbone's pooled prompt embedding of a ``text_time`` U-Net.

    Args:
        unet_config: A ``UNet2DConditionModel`` config.
        text_embeds: See :func:`resolve_pooled_text_embeds`.
        time_ids: See :func:`sdxl_time_ids` (validated here).

    Returns:
        Tensor | nn.Parameter | None: None for U-Nets without added
        conditioning; a Parameter when learnable (else a tensor, kept as a
        buffer by the backbone).
    """
    num_ids = 6 if isinstance(time_ids, str) else len(time_ids)
    dims = text_time_dims(unet_config, num_ids)
    if dims is None:
        if text_embeds is not None:
            raise ValueError(
                'text_embeds is only used by U-Nets with SDXL added '
                "conditioning (addition_embed_type='text_time'); this "
                'U-Net has none. Fix: drop text_embeds.')
        return None
    sdxl_time_ids(time_ids, 1, (1, 1), 'cpu')  # validate early
    emb, learnable = resolve_pooled_text_embeds(text_embeds, dims[0])
    return nn.Parameter(emb) if learnable else emb


def added_cond_kwargs(pooled: Optional[Tensor], time_ids: TimeIdsSpec,
                      latents: Tensor, vae_factor: int) -> dict:
    """Extra U-Net inputs: SDXL's ``added_cond_kwargs`` (empty if
    ``pooled`` is None).

    Args:
        pooled (Tensor, optional): ``(D, )`` pooled prompt embedding.
        time_ids: See :func:`sdxl_time_ids`.
        latents (Tensor): The U-Net's input ``(B, C, h, w)``.
        vae_factor (int): Image pixels per latent pixel.

    Returns:
        dict: ``{}`` or ``dict(added_cond_kwargs=dict(text_embeds=...,
        time_ids=...))``.
    """
    if pooled is None:
        return {}
    batch = latents.shape[0]
    image_hw = tuple(s * vae_factor for s in latents.shape[-2:])
    text = pooled.to(latents.device, latents.dtype)
    return dict(added_cond_kwargs=dict(
        text_embeds=text[None].expand(batch, -1),
        time_ids=sdxl_time_ids(time_ids, batch, image_hw,
                               latents.device).to(latents.dtype)))


def _load_tensor(path: str) -> Tensor:
    """The one tensor of a ``.pth``/``.safetensors`` file (or its
    ``text_embeds``/``pooled_prompt_embeds`` entry)."""
    from mmdiff.utils.checkpoint_io import read_checkpoint
    obj = read_checkpoint(path)
    if isinstance(obj, dict):
        keys = [k for k in ('text_embeds', 'pooled_prompt_embeds') if k in obj]
        if not keys and len(obj) != 1:
            raise ValueError(f'{path} holds {sorted(obj)}; expected one '
                             "tensor or a 'text_embeds' entry.")
        obj = obj[keys[0]] if keys else next(iter(obj.values()))
    return obj
