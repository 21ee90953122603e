"""VPD conditioned on a caption per image (TADP, Kondapaneni et al. 2024).

Data path: image key (file name) -> caption from a json file -> caption
modifier (e.g. ``'a dark night photo of {}'``) -> frozen CLIP text encoder,
token-level features ``(L, D)`` (cached per caption) -> optional text
adapter -> U-Net cross-attention -> VPD taps + the L-channel caption
cross-attention maps (one channel per token position).
"""
import json
import os.path as osp
from typing import Dict, List, Optional, Union

import torch
from torch import Tensor

from mmdiff.models.backbones import VPD
from mmdiff.models.text import load_text_encoder
from mmdiff.registry import MODELS


@MODELS.register_module()
class CaptionVPD(VPD):
    """VPD whose prompt is the image's own caption.

    The image keys (``img_path``) come from :class:`CaptionEncoderDecoder`,
    which sets :attr:`image_keys` from the data samples before each forward.
    The text encoder and the caption file are read on first use (building
    the model needs neither).

    Args:
        captions (str | dict): json file (or dict) ``{image: caption}``;
            an image's key is looked up as its full ``img_path``, then
            ``<folder>/<file name>`` (what ``make_class_captions.py``
            writes, unique across splits), then ``<file name>``.
        text_encoder (str): CLIP text encoder: a folder with config.json
            and tokenizer files, a Stable Diffusion folder (``text_encoder/``
            and ``tokenizer/``), or a hub id. Frozen, never in the state
            dict.
        caption_template (str): Modifier applied to every caption, with
            ``{}`` for the caption, e.g. ``'a dark night photo of {}'`` for
            cross-domain use. Defaults to '{}'.
        max_length (int): Tokens per caption ``L`` (padded/truncated);
            also the number of attention-map channels. Defaults to 77.
        missing_caption (str, optional): Caption of images not in the file
            (and of calls without keys). None: a missing caption is an
            error. Defaults to None.
        local_files_only (bool): Defaults to False.
        **kwargs: :class:`VPD` arguments (no ``class_embeddings``).
    """

    def __init__(self,
                 captions: Union[str, Dict[str, str]],
                 text_encoder: str,
                 caption_template: str = '{}',
                 max_length: int = 77,
                 missing_caption: Optional[str] = None,
                 local_files_only: bool = False,
                 **kwargs) -> None:
        if kwargs.pop('class_embeddings', None) is not None:
            raise ValueError('CaptionVPD is conditioned on captions: drop '
                             'class_embeddings.')
        if '{}' not in caption_template:
            raise ValueError(f"caption_template needs '{{}}', got "
                             f'{caption_template!r}.')
        super().__init__(class_embeddings=None,
                         local_files_only=local_files_only, **kwargs)
        self.captions_src = captions
        self.text_encoder_src = text_encoder
        self.caption_template = caption_template
        self.max_length = max_length
        self.missing_caption = missing_caption
        self.image_keys: Optional[List[str]] = None
        self._captions: Optional[Dict[str, str]] = None
        self._text = None  # (tokenizer, model): not a submodule
        self._cache: Dict[str, Tensor] = {}

    @property
    def num_tokens(self) -> int:
        """Caption tokens per image (= attention-map channels)."""
        return self.max_length

    # ------------------------------------------------------------------
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

    def _load_text_encoder(self):
        if self._text is None:
            # mmdiff's checked loader: folder, SD folder or hub id; a
            # missing or incomplete encoder is one error naming the fix
            model, tok = load_text_encoder(
                self.text_encoder_src, local_files_only=self.local_files_only)
            model.requires_grad_(False)
            self._text = (tok, model)
        return self._text

    def caption_of(self, key: Optional[str]) -> str:
        """The modified caption of an image key."""
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
    def encode_captions(self, captions: List[str]) -> Tensor:
        """Token-level features ``(B, L, D)``, cached per caption."""
        todo = sorted({c for c in captions if c not in self._cache})
        if todo:
            tok, model = self._load_text_encoder()
            ids = tok(todo, padding='max_length', max_length=self.max_length,
                      truncation=True, return_tensors='pt').input_ids
            # fp32 whatever the backbone's amp_dtype: the cache must not
            # depend on the first call's autocast state
            with torch.autocast(ids.device.type, enabled=False):
                feats = model(input_ids=ids).last_hidden_state.float()
            if feats.shape[-1] != self.cross_attention_dim:
                raise ValueError(
                    f'Text encoder width {feats.shape[-1]} != U-Net '
                    f'cross_attention_dim {self.cross_attention_dim}.')
            self._cache.update(zip(todo, feats))
        return torch.stack([self._cache[c] for c in captions])

    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None) -> Tensor:
        """Each image's caption tokens ``(B, L, D)``, adapted."""
        keys = self.image_keys or [None] * batch_size
        if len(keys) != batch_size:
            raise ValueError(f'{len(keys)} image keys for {batch_size} '
                             'images.')
        param = next(self.unet.parameters())
        texts = self.encode_captions([self.caption_of(k) for k in keys])
        texts = texts.to(param.device)
        if self.text_adapter is not None:
            texts = self.text_adapter(texts)
        return texts
