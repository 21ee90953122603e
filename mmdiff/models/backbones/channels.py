"""Check that a host model's neck/head expects the backbone's channels.

A host config writes ``neck.in_channels`` by hand; with attention maps each
tapped resolution gains K channels (K = number of class embeddings), so a
new class-embedding file silently changes what the neck must accept. Call
:func:`check_in_channels` on the built model
to get one error that names the fix instead of a conv shape error (a train
tool or test can call it right after building the model).
"""
from typing import List, Optional

from torch import nn

from .diffusion_backbone import DiffusionBackbone


def _expected(model: nn.Module) -> Optional[tuple]:
    """``(name, in_channels, in_index)`` of what reads the backbone."""
    neck = getattr(model, 'neck', None)
    if isinstance(neck, nn.Sequential) and len(neck):
        neck = neck[0]
    if neck is not None and hasattr(neck, 'in_channels'):
        return 'neck', neck.in_channels, None
    head = getattr(model, 'decode_head', None)
    if head is not None and hasattr(head, 'in_channels'):
        return 'decode_head', head.in_channels, getattr(head, 'in_index',
                                                        None)
    return None


def check_in_channels(model: nn.Module) -> None:
    """Raise if the neck (or decode head) disagrees with the backbone.

    Args:
        model (nn.Module): A built mmseg segmentor / depth estimator or mmdet
            detector whose ``backbone`` is a :class:`DiffusionBackbone`.

    Raises:
        ValueError: Naming the channels to write in the config.
    """
    backbone = getattr(model, 'backbone', None)
    found = _expected(model)
    if not isinstance(backbone, DiffusionBackbone) or found is None:
        return
    name, in_channels, in_index = found
    provided: List[int] = list(backbone.out_channels)
    if in_index is not None:
        index = [in_index] if isinstance(in_index, int) else list(in_index)
        provided = [provided[i] for i in index]
    expected = [in_channels] if isinstance(in_channels, int) else list(
        in_channels)
    if len(provided) == 1 and len(expected) > 1:
        return  # heads that resize/concat inputs handle this themselves
    if expected != provided:
        attn = ''
        if backbone.use_attn:
            strides = [backbone.vae_factor * d
                       for d in backbone.attn_downsamples]
            attn = (f' With use_attn=True each tap at a resolution with '
                    f'cross-attention maps (strides {strides}) gains K={backbone.num_tokens} channels, K being the '
                    'number of class embeddings.')
        raise ValueError(
            f'{name}.in_channels={expected} but the backbone '
            f'{type(backbone).__name__} outputs {provided} channels '
            f'(features {backbone.tap_channels}).{attn} Fix: set '
            f'{name}.in_channels={provided} in the config (or use '
            'class embeddings with the K the config was written for).')
