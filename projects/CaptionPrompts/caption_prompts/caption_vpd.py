"""VPD conditioned on a caption per image (TADP, Kondapaneni et al. 2024).

Data path: image path (metainfo ``img_path``, passed by
``mmdiff.MetainfoEncoderDecoder``) -> caption from a json file -> caption
template (e.g. ``'a dark night photo of {}'``) -> frozen CLIP text encoder
-> optional text adapter -> U-Net cross-attention -> VPD taps + the
L-channel caption cross-attention maps (one channel per token position).
The conditioning is :class:`~mmdiff.models.conditioning.CaptionPrompts`;
this class is VPD's settings with it.
"""
from typing import Dict, Optional, Union

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.registry import MODELS


@MODELS.register_module()
class CaptionVPD(DiffusionBackbone):
    """A diffusion backbone (VPD's defaults: maps on) whose prompt is the
    image's own caption.

    Args:
        captions, text_encoder, caption_template, max_length,
        missing_caption, text_adapter, gamma_init: Those of
            :class:`~mmdiff.models.conditioning.CaptionPrompts`.
        use_attn (bool): Concatenate the L-channel caption maps. Defaults
            to True.
        **kwargs: :class:`~mmdiff.models.backbones.DiffusionBackbone`
            arguments (not ``conditioner``).
    """

    def __init__(self,
                 captions: Union[str, Dict[str, str]],
                 text_encoder: str,
                 caption_template: str = '{}',
                 max_length: int = 77,
                 missing_caption: Optional[str] = None,
                 text_adapter: bool = True,
                 gamma_init: float = 1e-4,
                 use_attn: bool = True,
                 **kwargs) -> None:
        if 'conditioner' in kwargs:
            raise TypeError('CaptionVPD is conditioned on captions: drop '
                            'conditioner=.')
        super().__init__(
            use_attn=use_attn,
            conditioner=dict(
                type='CaptionPrompts', captions=captions,
                text_encoder=text_encoder,
                caption_template=caption_template, max_length=max_length,
                missing_caption=missing_caption, text_adapter=text_adapter,
                gamma_init=gamma_init),
            **kwargs)
