"""Text->image maps of Sana's cross-attention (``SanaAttnProcessor2_0``).

Sana's self-attention is linear (ReLU kernels, no softmax: no
probabilities to read); its cross-attention from the image tokens to the
text tokens is a softmax attention whose q/k may be RMS-normalised across
heads (Sana 1.5's ``qk_norm='rms_norm_across_heads'``), on the full width
before the heads are split. The map of text token ``k`` at image position
``n`` is the probability query ``n`` gives key ``k``, averaged over heads.
"""
from typing import Optional

from torch import Tensor, nn

from .joint import WrappingMapProcessor


def sana_cross_probs(attn: nn.Module, hidden_states: Tensor,
                     encoder_hidden_states: Tensor,
                     attention_mask: Optional[Tensor] = None) -> Tensor:
    """Head-averaged probabilities of a Sana cross-attention layer.

    Computed with the layer's own projections, q/k norms and mask as
    diffusers' ``SanaAttnProcessor2_0`` (SDPA's scale ``1 / sqrt(d)``), one
    head at a time to bound the memory.

    Args:
        attn (nn.Module): The block's ``attn2``.
        hidden_states (Tensor): Image tokens, ``(B, N, C)``.
        encoder_hidden_states (Tensor): Text tokens, ``(B, K, C)``.
        attention_mask (Tensor, optional): The additive mask as the layer
            gets it (``(B, 1, K)``, the transformer's
            ``encoder_attention_mask``).

    Returns:
        Tensor: ``(B, N, K)``.
    """
    batch, num_txt = encoder_hidden_states.shape[:2]
    query = attn.to_q(hidden_states)
    key = attn.to_k(encoder_hidden_states)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    heads = attn.heads
    query = query.unflatten(-1, (heads, -1))
    key = key.unflatten(-1, (heads, -1))
    mask = None
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, num_txt, batch)
        mask = mask.view(batch, heads, -1, mask.shape[-1])
    scale = query.shape[-1]**-0.5
    total = 0
    for head in range(heads):
        scores = query[:, :, head] @ key[:, :, head].transpose(1, 2) * scale
        if mask is not None:
            scores = scores + mask[:, head]
        total = total + scores.softmax(-1)
    return total / heads


class SanaCrossMapProcessor(WrappingMapProcessor):
    """Wraps a Sana cross-attention processor
    (:class:`~.joint.WrappingMapProcessor`); the maps are
    :func:`sana_cross_probs`.

    Args:
        processor: The layer's processor (``attn.processor``).
        store (AttentionStore): Where the maps go.
        name (str): The processor's key in ``model.attn_processors``.
    """

    def probs(self, attn, hidden_states, encoder_hidden_states,
              attention_mask, args, kwargs):
        return sana_cross_probs(attn, hidden_states, encoder_hidden_states,
                                attention_mask)
