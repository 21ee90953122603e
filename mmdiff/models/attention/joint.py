"""Text->image maps of joint (MMDiT) attention: SD3 / SD3.5 and FLUX.

In a joint block, image and text tokens attend together: one softmax over
the keys of both streams. The map of text token ``k`` at image position
``n`` is the probability that image query ``n`` gives to text key ``k`` in
that softmax (averaged over heads), VPD's cross-attention maps carried
over; the image->image part of the row is left out, so a row sums to the
share of attention that goes to the text.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from .store import AttentionStore


def _heads(x: Tensor, heads: int) -> Tensor:
    """``(B, N, H * d) -> (B, N, H, d)``."""
    return x.unflatten(-1, (heads, -1))


def _norm(norm: Optional[nn.Module], x: Tensor) -> Tensor:
    return x if norm is None else norm(x)


def joint_text_probs(attn: nn.Module,
                     hidden_states: Tensor,
                     encoder_hidden_states: Tensor,
                     image_rotary_emb=None,
                     text_first: bool = False) -> Tensor:
    """Head-averaged image->text probabilities of a joint attention layer.

    Computed with the layer's own projections and q/k norms (diffusers'
    ``JointAttnProcessor2_0`` for SD3, ``FluxAttnProcessor`` for FLUX, with
    its rotary embedding), one head at a time to bound the memory.

    Args:
        attn (nn.Module): The block's ``attn`` (``to_q``/``to_k``,
            ``add_q_proj``/``add_k_proj``, ``norm_q`` ... ``norm_added_k``).
        hidden_states (Tensor): Image tokens as the layer gets them,
            ``(B, N, C)``.
        encoder_hidden_states (Tensor): Text tokens, ``(B, K, C)``.
        image_rotary_emb (tuple[Tensor, Tensor], optional): FLUX's rotary
            ``(cos, sin)`` over the text-then-image sequence.
        text_first (bool): The joint sequence is text then image (FLUX);
            else image then text (SD3). Defaults to False.

    Returns:
        Tensor: ``(B, N, K)``.
    """
    from diffusers.models.embeddings import apply_rotary_emb
    heads = attn.heads
    q = _norm(attn.norm_q, _heads(attn.to_q(hidden_states), heads))
    k = _norm(attn.norm_k, _heads(attn.to_k(hidden_states), heads))
    cq = _norm(attn.norm_added_q,
               _heads(attn.add_q_proj(encoder_hidden_states), heads))
    ck = _norm(attn.norm_added_k,
               _heads(attn.add_k_proj(encoder_hidden_states), heads))
    num_img, num_txt = hidden_states.shape[1], encoder_hidden_states.shape[1]
    if text_first:
        query, key = torch.cat([cq, q], 1), torch.cat([ck, k], 1)
    else:
        query, key = torch.cat([q, cq], 1), torch.cat([k, ck], 1)
    if image_rotary_emb is not None:
        query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
        key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
    img = slice(num_txt, None) if text_first else slice(0, num_img)
    txt = slice(0, num_txt) if text_first else slice(num_img, None)
    query = query[:, img]
    scale = query.shape[-1]**-0.5
    total = 0
    for head in range(heads):
        scores = query[:, :, head] @ key[:, :, head].transpose(1, 2)
        total = total + (scores * scale).softmax(-1)[..., txt]
    return total / heads


class WrappingMapProcessor:
    """Wraps a layer's processor: the layer's output is the wrapped
    processor's, unchanged; :meth:`probs` of each call with text go to an
    :class:`AttentionStore` (computed even when the store is idle, so that
    gradient checkpointing recomputes what the forward computed).

    Args:
        processor: The layer's processor (``attn.processor``).
        store (AttentionStore): Where the maps go.
        name (str): The processor's key in ``model.attn_processors``.
    """

    def __init__(self, processor, store: AttentionStore, name: str) -> None:
        self.processor = processor
        self.store = store
        self.name = name

    def probs(self, attn: nn.Module, hidden_states: Tensor,
              encoder_hidden_states: Tensor, attention_mask: Optional[Tensor],
              args: tuple, kwargs: dict) -> Tensor:
        """The head-averaged image->text probabilities of this call."""
        raise NotImplementedError

    def __call__(self, attn: nn.Module, hidden_states: Tensor,
                 encoder_hidden_states: Optional[Tensor] = None,
                 attention_mask: Optional[Tensor] = None,
                 *args, **kwargs):
        if encoder_hidden_states is not None:
            self.store.add(self.name, self.probs(
                attn, hidden_states, encoder_hidden_states, attention_mask,
                args, kwargs))
        return self.processor(attn, hidden_states, encoder_hidden_states,
                              attention_mask, *args, **kwargs)


class JointMapProcessor(WrappingMapProcessor):
    """Wraps a joint-attention processor (:class:`WrappingMapProcessor`);
    the maps are :func:`joint_text_probs`.

    Args:
        processor: The layer's processor (``attn.processor``).
        store (AttentionStore): Where the maps go.
        name (str): The processor's key in ``model.attn_processors``.
        text_first (bool): FLUX's sequence order. Defaults to False.
    """

    def __init__(self, processor, store: AttentionStore, name: str,
                 text_first: bool = False) -> None:
        super().__init__(processor, store, name)
        self.text_first = text_first

    def probs(self, attn, hidden_states, encoder_hidden_states,
              attention_mask, args, kwargs):
        rotary = args[0] if args else kwargs.get('image_rotary_emb')
        return joint_text_probs(attn, hidden_states, encoder_hidden_states,
                                rotary, self.text_first)
