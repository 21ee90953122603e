"""A diffusers attention processor that also records cross-attention maps."""
from typing import Dict, Iterable, List, Optional

from diffusers.models.attention_processor import (AttnProcessor,
                                                  AttnProcessor2_0)
from torch import Tensor, nn

from .store import AttentionStore

PLACES = {'down': 'down_blocks.', 'mid': 'mid_block.', 'up': 'up_blocks.'}


class MapCollectingAttnProcessor(AttnProcessor2_0):
    """SDPA attention that also stores ``softmax(QK^T * scale)``.

    The probabilities are computed explicitly with the layer's own helpers
    (``head_to_batch_dim``, ``get_attention_scores``), averaged over heads and
    handed to an :class:`AttentionStore`; the layer output itself is computed
    by :class:`AttnProcessor2_0` (SDPA), unchanged.

    Args:
        store (AttentionStore): Where the maps go.
        name (str): The processor's key in ``unet.attn_processors``.
    """

    def __init__(self, store: AttentionStore, name: str) -> None:
        super().__init__()
        self.store = store
        self.name = name

    def __call__(self,
                 attn: nn.Module,
                 hidden_states: Tensor,
                 encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None,
                 temb: Optional[Tensor] = None,
                 *args,
                 **kwargs) -> Tensor:
        if encoder_hidden_states is not None:
            # Computed even when the store is idle, so that gradient
            # checkpointing recomputes exactly what the forward computed.
            self.store.add(
                self.name,
                attention_probs(attn, hidden_states, encoder_hidden_states,
                                attention_mask))
        return super().__call__(attn, hidden_states, encoder_hidden_states,
                                attention_mask, temb, *args, **kwargs)


def attention_probs(attn: nn.Module,
                    hidden_states: Tensor,
                    encoder_hidden_states: Tensor,
                    attention_mask: Optional[Tensor] = None) -> Tensor:
    """Head-averaged cross-attention probabilities of a diffusers Attention.

    Args:
        attn (nn.Module): A diffusers ``Attention`` layer.
        hidden_states (Tensor): Queries' input, ``(B, N, C)`` or
            ``(B, C, H, W)``.
        encoder_hidden_states (Tensor): Keys' input, ``(B, K, D)``.
        attention_mask (Tensor, optional): Mask as the layer receives it.

    Returns:
        Tensor: ``(B, N, K)``.
    """
    if hidden_states.ndim == 4:
        batch, channels = hidden_states.shape[:2]
        hidden_states = hidden_states.view(batch, channels,
                                           -1).transpose(1, 2)
    batch = hidden_states.shape[0]
    if attn.group_norm is not None:
        hidden_states = attn.group_norm(hidden_states.transpose(
            1, 2)).transpose(1, 2)
    if attn.norm_cross:
        encoder_hidden_states = attn.norm_encoder_hidden_states(
            encoder_hidden_states)
    mask = attn.prepare_attention_mask(attention_mask,
                                       encoder_hidden_states.shape[1], batch)
    query = attn.head_to_batch_dim(attn.to_q(hidden_states))
    key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
    probs = attn.get_attention_scores(query, key, mask)
    return probs.view(batch, attn.heads, *probs.shape[1:]).mean(1)


def cross_attention_layers(
        unet: nn.Module,
        places: Iterable[str] = ('down', 'up')) -> List[str]:
    """Processor names of the ``attn2`` layers of the chosen places.

    Args:
        unet (nn.Module): A diffusers ``UNet2DConditionModel``.
        places (Iterable[str]): Any of ``'down'``, ``'mid'``, ``'up'``.
            Defaults to ('down', 'up') (VPD's ``up_cross+down_cross``).

    Returns:
        list[str]: Keys of ``unet.attn_processors``.
    """
    unknown = set(places) - set(PLACES)
    if unknown:
        raise ValueError(f'Unknown attention places {sorted(unknown)}; '
                         f'choose from {sorted(PLACES)}.')
    prefixes = tuple(PLACES[p] for p in places)
    return [
        name for name in unet.attn_processors
        if name.endswith('attn2.processor') and name.startswith(prefixes)
    ]


def install_map_processors(unet: nn.Module, store: AttentionStore,
                           layers: Iterable[str]) -> Dict[str, object]:
    """Collect maps on ``layers``; every other layer keeps its processor.

    Processors a user or a library (IP-Adapter, custom attention) installed
    on other layers stay as they are; put back the ones replaced here with
    :func:`set_processors` (the probe does, for the layers it drops).

    Args:
        unet (nn.Module): A diffusers ``UNet2DConditionModel``.
        store (AttentionStore): Shared store of the collecting processors.
        layers (Iterable[str]): Processor names that collect maps.

    Returns:
        dict: The processors replaced, by name.
    """
    layers = set(layers)
    replaced = {name: proc for name, proc in unet.attn_processors.items()
                if name in layers}
    unknown = layers - set(replaced)
    if unknown:
        raise ValueError(f'No attention layers {sorted(unknown)} in the '
                         'U-Net; choose from its attn_processors.')
    set_processors(unet, {name: MapCollectingAttnProcessor(store, name)
                          for name in layers})
    return replaced


def set_processors(unet: nn.Module, processors: Dict[str, object]) -> None:
    """Install ``processors`` by name; every other layer keeps its own.

    ``unet.set_attn_processor`` with a dict needs one entry per layer: the
    others get their current processor back (the same object).
    """
    if not processors:
        return
    current = unet.attn_processors
    current.update(processors)
    unet.set_attn_processor(current)


def check_replaceable(replaced: Dict[str, object]) -> None:
    """Refuse to collect maps where another processor was installed.

    A map-collecting layer computes its output with SDPA: a custom
    processor there (IP-Adapter, a user's) would silently stop running.

    Args:
        replaced (dict): Processors replaced by the map processors, by name.
    """
    custom = {name: type(proc).__name__ for name, proc in replaced.items()
              if not (type(proc) in (AttnProcessor, AttnProcessor2_0)
                      or isinstance(proc, MapCollectingAttnProcessor))}
    if custom:
        raise ValueError(
            'Attention maps are collected on layers with their own '
            f'processors {custom}; collecting would replace them. Collect '
            'maps elsewhere (attn_places / attn_min_downsample), set '
            'use_attn=False, or install those processors on layers whose '
            'maps are not used.')
