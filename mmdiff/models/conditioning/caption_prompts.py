"""Each image's own caption as its prompt (TADP, Kondapaneni et al. 2024).

Image path (metainfo ``img_path``) -> caption from a json file -> caption
template (e.g. ``'a dark night photo of {}'``) -> the frozen CLIP text
encoder (:class:`~mmdiff.models.text.caption_encoder.CaptionEncoder`),
token-level features ``(L, D)``, cached per caption -> optional text
adapter.
"""
import json
import os.path as osp
from typing import Dict, Optional, Sequence, Union

import torch
from torch import Tensor

from mmdiff.models.text.adapter import TextAdapter
from mmdiff.registry import MODELS
from .base import Conditioner


@MODELS.register_module()
class CaptionPrompts(Conditioner):
    """The image's caption, ``L`` tokens (one attention-map channel per
    token position).

    The text encoder and the caption file are read on first use (building
    needs neither); the encoder is frozen and never in the state dict.

    Args:
        dim (int): The U-Net's ``cross_attention_dim`` (from the backbone).
        captions (str | dict): json file (or dict) ``{image: caption}``;
            an image's key is looked up as its full ``img_path``, then
            ``<folder>/<file name>`` (what ``make_class_captions.py``
            writes, unique across splits), then ``<file name>``.
        text_encoder (str): CLIP text encoder: a folder with config.json
            and tokenizer files, a Stable Diffusion folder (``text_encoder/``
            and ``tokenizer/``), or a hub id.
        caption_template (str): Applied to every caption, ``{}`` for the
            caption. Defaults to '{}'.
        max_length (int): Tokens per caption ``L`` (padded/truncated).
            Defaults to 77.
        missing_caption (str, optional): Caption of images not in the file
            (and of calls without metainfo). None: a missing caption is an
            error. Defaults to None.
        text_adapter (bool): VPD's :class:`TextAdapter` on the tokens.
            Defaults to True.
        gamma_init (float): Initial adapter gate. Defaults to 1e-4.
        local_files_only (bool): From the backbone. Defaults to False.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, dim: int, captions: Union[str, Dict[str, str]],
                 text_encoder: str, caption_template: str = '{}',
                 max_length: int = 77,
                 missing_caption: Optional[str] = None,
                 text_adapter: bool = True, gamma_init: float = 1e-4,
                 local_files_only: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(dim, local_files_only, init_cfg)
        if '{}' not in caption_template:
            raise ValueError(f"caption_template needs '{{}}', got "
                             f'{caption_template!r}.')
        self.captions_src = captions
        self.text_encoder_src = text_encoder
        self.caption_template = caption_template
        self.max_length = max_length
        self.missing_caption = missing_caption
        self.text_adapter = TextAdapter(self.dim, gamma_init) \
            if text_adapter else None
        self._captions: Optional[Dict[str, str]] = None
        self._encoder = []  # [CaptionEncoder]: not a submodule
        self._cache: Dict[str, Tensor] = {}

    @property
    def num_tokens(self) -> int:
        """Caption tokens per image (= attention-map channels)."""
        return self.max_length

    def _load_captions(self) -> Dict[str, str]:
        if self._captions is None:
            src = self.captions_src
            if isinstance(src, str):
                if not osp.isfile(src):
                    raise FileNotFoundError(
                        f'Caption file {src!r} not found. Write one (json '
                        '{file name: caption}), e.g. class-name captions with'
                        ' `python projects/CaptionPrompts/tools/'
                        'make_class_captions.py CONFIG --out ' + src + '`.')
                with open(src, encoding='utf-8') as f:
                    src = json.load(f)
            self._captions = dict(src)
        return self._captions

    def text_encoder(self):
        """The frozen :class:`CaptionEncoder`, built and loaded on first
        use."""
        if not self._encoder:
            from mmdiff.models.text.caption_encoder import CaptionEncoder
            encoder = CaptionEncoder(self.text_encoder_src,
                                     self.local_files_only, self.max_length)
            encoder.load_weights()
            if encoder.hidden_size != self.dim:
                raise ValueError(
                    f'Text encoder width {encoder.hidden_size} != U-Net '
                    f'cross_attention_dim {self.dim}.')
            self._encoder.append(encoder)
        return self._encoder[0]

    def caption_of(self, key: Optional[str]) -> str:
        """The templated caption of an image key."""
        caption = None
        if key:
            table = self._load_captions()
            parent = osp.basename(osp.dirname(key))
            for cand in (key, f'{parent}/{osp.basename(key)}',
                         osp.basename(key)):
                if cand in table:
                    caption = table[cand]
                    break
        if caption is None:
            if self.missing_caption is None:
                raise KeyError(
                    f'No caption for image {key!r} in {self.captions_src!r}'
                    ' (and missing_caption=None). Add it, or set '
                    "missing_caption='' for an empty prompt.")
            caption = self.missing_caption
        return self.caption_template.format(caption)

    @torch.no_grad()
    def encode_captions(self, captions: Sequence[str]) -> Tensor:
        """Token-level features ``(B, L, D)`` in fp32 (whatever the
        backbone's autocast: the cache must not depend on the first call),
        cached per caption."""
        todo = sorted({c for c in captions if c not in self._cache})
        if todo:
            encoder = self.text_encoder()
            with torch.autocast('cpu', enabled=False):
                feats = encoder(todo, torch.device('cpu')).float()
            self._cache.update(zip(todo, feats))
        return torch.stack([self._cache[c] for c in captions])

    def forward(self, batch_size: int, class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        """Each image's caption tokens ``(B, L, D)``, adapted."""
        keys = [m.get('img_path') for m in metainfo] if metainfo \
            else [None] * batch_size
        if len(keys) != batch_size:
            raise ValueError(f'{len(keys)} metainfo entries for '
                             f'{batch_size} images.')
        texts = self.encode_captions([self.caption_of(k) for k in keys])
        if self.text_adapter is not None:
            param = next(self.text_adapter.parameters())
            texts = self.text_adapter(texts.to(param.device))
        return texts
