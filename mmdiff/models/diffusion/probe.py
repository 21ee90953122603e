"""Probing a U-Net once at build time.

One tiny forward (latents of one U-Net multiple, two zero tokens) tells the
backbone, for any block layout: each tap's channels and stride, which
cross-attention layers run at which resolution (the map processors are then
installed on the kept ones only; every other layer keeps the processor it
had), and which U-Net parameters no tap depends on (frozen by the backbone,
so that DDP needs no ``find_unused_parameters``).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdiff.models.attention import (AttentionStore, check_replaceable,
                                     cross_attention_layers,
                                     install_map_processors, set_processors)
from .taps import FeatureTaps

RunUNet = Callable[[Tensor, Tensor], Tuple[Dict[str, Tensor], dict]]


@dataclass
class UNetProbe:
    """What one probing forward found.

    Attributes:
        tap_channels (list[int]): Channels of each tap, in tap order.
        tap_strides (list[int]): Stride of each tap w.r.t. the image.
        attn_layers (dict[str, int]): Processor name -> downsampling w.r.t.
            the latent, of the layers whose maps are kept.
        unused_params (list[str]): U-Net parameters no tap depends on.
    """
    tap_channels: List[int]
    tap_strides: List[int]
    attn_layers: Dict[str, int]
    unused_params: List[str]

    @property
    def attn_downsamples(self) -> List[int]:
        """Sorted downsamplings (w.r.t. the latent) that carry maps."""
        return sorted(set(self.attn_layers.values()))


def probe_unet(unet: nn.Module,
               taps: FeatureTaps,
               attn_store: AttentionStore,
               run_unet: RunUNet,
               cross_attention_dim: int,
               vae_factor: int,
               unet_factor: int,
               use_attn: bool = False,
               attn_places: Sequence[str] = ('down', 'up'),
               attn_min_downsample: int = 2) -> UNetProbe:
    """Run one tiny forward and install the map processors.

    Only the kept map layers get a map-collecting processor; the others keep
    theirs (with ``use_attn=False`` no processor is touched at all).

    Args:
        unet (nn.Module): A diffusers ``UNet2DConditionModel``.
        taps (FeatureTaps): The backbone's taps; they decide from this
            forward whether to stop early (:meth:`FeatureTaps.settle`).
        attn_store (AttentionStore): The backbone's (fresh) map store.
        run_unet (callable): ``(latents, cond) -> (feats, maps)``, the
            backbone's U-Net call (with its added conditioning).
        cross_attention_dim (int): Width of the conditioning tokens.
        vae_factor (int): Image pixels per latent pixel.
        unet_factor (int): Downsampling inside the U-Net.
        use_attn (bool): Collect cross-attention maps. Defaults to False.
        attn_places (Sequence[str]): Where maps are collected. Defaults to
            ('down', 'up').
        attn_min_downsample (int): Keep maps at most the latent's size
            divided by this. Defaults to 2.

    Returns:
        UNetProbe
    """
    candidates = cross_attention_layers(unet, attn_places) \
        if use_attn else []
    replaced = install_map_processors(unet, attn_store, candidates)
    size = unet_factor
    latents = torch.zeros(1, unet.config.in_channels, size, size)
    cond = torch.zeros(1, 2, cross_attention_dim)
    with taps.probing(), torch.enable_grad():
        feats, _ = run_unet(latents, cond)
    taps.settle(feats)
    used = graph_leaves(list(feats.values()))
    unused = [name for name, param in unet.named_parameters()
              if param not in used]
    channels = [feats[path].shape[1] for path in taps.paths]
    strides = [vae_factor * size // feats[path].shape[-1]
               for path in taps.paths]
    layers = {
        name: down
        for name, down in attn_store.layer_downsamples((size, size)).items()
        if down >= attn_min_downsample
    }
    set_processors(unet, {name: proc for name, proc in replaced.items()
                          if name not in layers})
    check_replaceable({name: replaced[name] for name in layers})
    return UNetProbe(channels, strides, layers, unused)


def graph_leaves(outputs: List[Tensor]) -> set:
    """Parameters (autograd leaves) that ``outputs`` depend on."""
    leaves, seen = set(), set()
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if hasattr(node, 'variable'):
            leaves.add(node.variable)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return leaves
