"""The frozen CLIP text encoder of caption conditioning: the backbones'
:class:`~mmdiff.models.conditioning.CaptionPrompts` and caption pretraining
(:class:`~mmdiff.models.pretrainers.DiffusionPretrainer`).

As diffusers' ``examples/text_to_image/train_text_to_image.py``: captions
are tokenised padded (and truncated) to the tokenizer's max length, and the
text encoder's ``last_hidden_state`` is the U-Net's
``encoder_hidden_states``. The encoder is found by mmdiff's checked loader
(:mod:`mmdiff.models.text.encoder`: a Stable Diffusion folder with
``text_encoder/`` + ``tokenizer/``, a CLIP folder, or a hub id); it is
built from its config in ``__init__`` and gets its weights in
:meth:`CaptionEncoder.load_weights` (the pretrainer's ``init_weights``).
"""
import os.path as osp
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from mmdiff.models.diffusion.loading import source_kind
from mmdiff.models.text.encoder import (_missing_encoder_error,
                                        load_located, locate_text_encoder)


class CaptionEncoder(nn.Module):
    """A frozen ``CLIPTextModel`` + its ``CLIPTokenizer``.

    Args:
        source (str): Folder or hub id (see
            :func:`mmdiff.models.text.encoder.locate_text_encoder`).
        local_files_only (bool): Never touch the network. Defaults to False.
        max_length (int, optional): Tokens per caption (padded/truncated).
            Defaults to None: the tokenizer's (SD's 77).
    """

    def __init__(self, source: str, local_files_only: bool = False,
                 max_length: Optional[int] = None) -> None:
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
        self.source = str(source)
        self.local_files_only = local_files_only
        self.loc = locate_text_encoder(source,
                                       local_files_only=local_files_only)
        if self.loc['kind'] != 'clip':
            raise ValueError(
                f'Captions are encoded with a CLIP text encoder (the '
                f"U-Net's); {source!r} holds a {self.loc['kind']} encoder "
                f"({self.loc['model_sub'] or 'root'}). Fix: a Stable "
                'Diffusion folder, a CLIP folder or hub id.')
        kw = dict(revision=self.loc['revision'],
                  local_files_only=local_files_only)
        try:
            config = CLIPTextConfig.from_pretrained(
                self.loc['path'], subfolder=self.loc['model_sub'], **kw)
            self.tokenizer = CLIPTokenizer.from_pretrained(
                self.loc['path'], subfolder=self.loc['tok_sub'], **kw)
        except OSError as e:
            raise _missing_encoder_error(source, local_files_only,
                                         str(e).splitlines()[0]) from e
        with torch.random.fork_rng(devices=[]):  # weights come later
            self.model = CLIPTextModel(config)
        self.model.requires_grad_(False)
        self.model.eval()
        # SD's 77; a tokenizer saved without model_max_length (1e30) falls
        # back to the position table's length
        longest = int(min(self.tokenizer.model_max_length,
                          config.max_position_embeddings))
        if max_length is not None and not 1 <= max_length <= longest:
            raise ValueError(f'max_length must be in [1, {longest}] for the '
                             f'text encoder at {source!r}, got {max_length}.')
        self.max_length = longest if max_length is None else int(max_length)

    @property
    def hidden_size(self) -> int:
        """Width of the hidden states (the U-Net's cross-attention dim)."""
        return int(self.model.config.hidden_size)

    def load_weights(self) -> None:
        """Load the encoder's weights (checked: a complete text model)."""
        model, _ = load_located(self.loc, self.local_files_only)
        self.model.load_state_dict(model.state_dict(), strict=True)

    def train(self, mode: bool = True) -> 'CaptionEncoder':
        """Stay in eval: the encoder is frozen."""
        return super().train(False)

    def token_ids(self, captions: Sequence[str]) -> Tensor:
        """``(B, max_length)`` ids, padded and truncated as SD trains."""
        return self.tokenizer(
            list(captions), padding='max_length', max_length=self.max_length,
            truncation=True, return_tensors='pt').input_ids

    @torch.no_grad()
    def forward(self, captions: Sequence[str],
                device: Optional[torch.device] = None) -> Tensor:
        """``(B, max_length, D)``: the text encoder's last hidden state."""
        device = device or next(self.model.parameters()).device
        ids = self.token_ids(captions).to(device)
        return self.model(ids, return_dict=False)[0]

    def save(self, folder: str) -> None:
        """Write ``folder/text_encoder`` and ``folder/tokenizer``
        (``save_pretrained``: the Stable Diffusion folder layout)."""
        self.model.save_pretrained(osp.join(folder, 'text_encoder'))
        self.tokenizer.save_pretrained(osp.join(folder, 'tokenizer'))


def build_caption_encoder(source: Optional[str], pretrained: Optional[str],
                          cross_attention_dim: int,
                          local_files_only: bool = False) -> CaptionEncoder:
    """The :class:`CaptionEncoder` of ``source``, or of ``pretrained`` when
    ``source`` is None, checked against the U-Net's cross-attention width.

    Raises:
        ValueError: No source (``pretrained`` None or a single file), or a
            width other than the U-Net's, naming the fix.
    """
    if source is None:
        if source_kind(pretrained) not in ('folder', 'hub'):
            raise ValueError(
                "conditioning='caption' needs a CLIP text encoder: "
                f'pretrained={pretrained!r} has none to offer (a diffusers '
                'folder or hub id with text_encoder/ and tokenizer/ has). '
                'Fix: pass text_encoder= (a Stable Diffusion folder, a CLIP '
                "folder or a hub id such as 'openai/clip-vit-large-patch14')"
                '.')
        source = pretrained
    encoder = CaptionEncoder(source, local_files_only)
    if encoder.hidden_size != cross_attention_dim:
        raise ValueError(
            f'The text encoder at {source!r} gives {encoder.hidden_size}-wide '
            'hidden states but the U-Net cross-attends to '
            f'{cross_attention_dim}. Fix: the text encoder the U-Net was '
            'trained with (SD1.x: CLIP ViT-L/14, 768; SD2.x: OpenCLIP '
            'ViT-H/14, 1024), or a unet_cfg with '
            f'cross_attention_dim={encoder.hidden_size}.')
    return encoder


def batch_captions(data_samples, dropout: float = 0.0) -> List[str]:
    """The batch's captions (data sample metainfo ``caption``), each
    replaced by the empty prompt with probability ``dropout``, drawn from
    the global torch RNG (which checkpoints save: a resumed run drops the
    same ones)."""
    if not data_samples or any(
            not isinstance(s.metainfo.get('caption'), str)
            for s in data_samples):
        raise ValueError(
            "conditioning='caption' needs a 'caption' string in every "
            "data sample's metainfo: use mmdiff.ImageFolderDataset("
            "captions='auto') (metadata.jsonl or <image>.txt) and add "
            "'caption' to the packer's meta_keys.")
    captions = [s.metainfo['caption'] for s in data_samples]
    if dropout > 0:
        drop = torch.rand(len(captions)) < dropout
        captions = ['' if d else c for c, d in zip(captions, drop)]
    return captions
