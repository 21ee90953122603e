"""Class text embeddings: class names x templates -> CLIP/T5 -> K x D.

VPD conditions the U-Net on one CLIP text embedding per class. Its released
files (ADE20K 150 x 768, NYU scenes 27 x 768) came without the script that made
them; :func:`compute_class_embeddings` is that script
(``tools/misc/build_class_embeddings.py`` wraps it, and
:mod:`mmdiff.models.text.cache` caches it for the backbone).

Data path: class names (a host dataset's metainfo, a list or a text file) x
prompt templates -> the encoder's tokenizer -> ``CLIPTextModel`` ->
``pooler_output`` (EOS token, ``output='pooled'``, K x D) or
``last_hidden_state`` (``output='tokens'``, K x L x D), averaged over the
templates. A T5 encoder (``T5EncoderModel``: the text encoder of SD3 /
SD3.5, FLUX.1 and PixArt-Sigma) runs with the prompt's attention mask;
T5 has no pooler, so its ``'pooled'`` output is mmdiff's own reduction:
the mean of ``last_hidden_state`` over the prompt's non-padding tokens
(attention mask 1: the words and the closing ``</s>``), see
:func:`masked_mean`.

Recipes (see docs/class_embeddings.md):

- VPD ADE20K: ``openai/clip-vit-large-patch14``, template
  ``'a photo of a {}'``, pooled, 77 tokens.
- VPD NYUv2 depth: the same encoder, the 80 CLIP ImageNet templates, pooled,
  20 tokens (mmseg then appends the mean row, see :func:`append_mean_row`).
"""
import os
import sys
from typing import List, Optional

import torch
from torch import Tensor

from mmdiff.version import __version__
from . import encoder
from .prompts import NameSpec, resolve_class_names, resolve_templates

OUTPUTS = ('pooled', 'tokens')
#: ``format`` of the metadata stored with the embeddings.
FORMAT = 'mmdiff.class_embeddings/1'


def check_output(output: str) -> None:
    """Refuse an ``output`` other than :data:`OUTPUTS`."""
    if output not in OUTPUTS:
        raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}.')


def append_mean_row(embeddings: Tensor) -> Tensor:
    """Append the mean over classes as an extra row, as mmseg's VPD does.

    mmseg's ``VPD(class_embed_select=True)`` concatenates
    ``embeddings.mean(0)`` to the 27 NYU scene embeddings (row 27 = unknown
    scene), so its depth checkpoints hold 28 rows.
    """
    return torch.cat([embeddings, embeddings.mean(dim=0, keepdim=True)], 0)


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """The T5 ``'pooled'`` feature: mean of ``hidden`` ``(N, L, D)`` over
    the positions where ``mask`` ``(N, L)`` is 1 (the prompt's tokens,
    ``</s>`` included; padding excluded)."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)


#: How ``output='pooled'`` reduces each encoder's tokens (metadata).
POOLING = dict(clip='eos_token', t5='mean_over_non_padding_tokens')


def _prompt(template: str, name: str, underscore_to_space: bool) -> str:
    if underscore_to_space:
        name = name.replace('_', ' ')
    return template.replace('{}', name)


@torch.no_grad()
def _encode(model, tokenizer, prompts: List[str], output: str,
            max_length: int, normalize: bool, device: str,
            kind: str = 'clip') -> Tensor:
    tokens = tokenizer(prompts, padding='max_length', max_length=max_length,
                       truncation=True, return_tensors='pt')
    ids = tokens.input_ids.to(device)
    if kind == 't5':
        # T5 attends both ways: the mask keeps padding out of the prompt's
        # tokens (as PixArt's pipeline), so features do not depend on
        # max_length; T5 has no pooler: 'pooled' is the masked mean.
        mask = tokens.attention_mask.to(device)
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        feats = masked_mean(hidden, mask) if output == 'pooled' else hidden
    else:
        # Like Stable Diffusion (and ldm's FrozenCLIPEmbedder), no attention
        # mask: padding is EOS, and the causal mask keeps it out of earlier
        # positions, so the pooled EOS feature does not depend on
        # max_length.
        out = model(input_ids=ids)
        feats = out.pooler_output if output == 'pooled' else \
            out.last_hidden_state
    feats = feats.float()
    if normalize:
        feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats


def _max_length_limit(model, tokenizer) -> int:
    """Longest ``max_length``: CLIP's position table; T5 (relative
    positions): the tokenizer's ``model_max_length`` (512 for the T5s of
    SD3, FLUX.1, PixArt), 512 when the tokenizer sets none."""
    limit = getattr(model.config, 'max_position_embeddings', None)
    if limit is None:
        limit = getattr(tokenizer, 'model_max_length', None)
        limit = int(limit) if limit and limit < 10**6 else 512
    return int(limit)


def compute_class_embeddings(class_names: NameSpec,
                             text_encoder,
                             templates: NameSpec = 'vpd',
                             output: str = 'pooled',
                             max_length: int = 77,
                             local_files_only: bool = False,
                             device: str = 'cpu',
                             batch_size: int = 256,
                             progress: bool = True,
                             normalize: bool = False,
                             underscore_to_space: bool = True,
                             revision: Optional[str] = None,
                             text_encoder_subfolder: Optional[str] = None,
                             return_metadata: bool = False):
    """Encode every class with every template and average over templates.

    Args:
        class_names (str | Sequence[str]): see :func:`resolve_class_names`.
        text_encoder (str | tuple): a hub id
            (``openai/clip-vit-large-patch14``), a local CLIP or T5 folder,
            a diffusers pipeline folder or hub id (its ``text_encoder``/
            ``tokenizer`` subfolders are used, or
            ``text_encoder_subfolder``), or an already loaded
            ``(CLIPTextModel | T5EncoderModel, tokenizer)`` pair.
        templates (str | Sequence[str]): ``'vpd'``, ``'imagenet80'``, a list
            or a text file. Defaults to ``'vpd'``.
        output (str): ``'pooled'`` -> (K, D): CLIP's ``pooler_output``
            (EOS token), as VPD; T5: the mean over the prompt's non-padding
            tokens (:func:`masked_mean`). ``'tokens'`` -> (K, L, D)
            ``last_hidden_state``. Defaults to ``'pooled'``.
        max_length (int): tokenizer length (pad/truncate). VPD's NYU file
            used 20. Defaults to 77.
        local_files_only (bool): never touch the network. Defaults to False.
        device (str): where to run the encoder. Defaults to ``'cpu'``.
        batch_size (int): prompts per forward pass (whole classes are kept
            together). Defaults to 256.
        progress (bool): show mmengine's progress bar over classes.
            Defaults to True.
        normalize (bool): L2-normalise each template's feature and the
            average (CLIP zero-shot style). VPD uses the raw
            ``pooler_output``. Defaults to False.
        underscore_to_space (bool): write ``living_room`` as
            ``living room`` in prompts. Defaults to True.
        revision (str, optional): hub revision. Defaults to None.
        text_encoder_subfolder (str, optional): the encoder's subfolder in
            a pipeline folder or hub id (its tokenizer:
            ``text_encoder_N`` -> ``tokenizer_N``): SD3 / SD3.5's T5
            ``'text_encoder_3'``, FLUX.1's ``'text_encoder_2'``,
            PixArt-Sigma's ``'text_encoder'``. Defaults to None (see
            :func:`~mmdiff.models.text.encoder.locate_text_encoder`).
        return_metadata (bool): also return the metadata dict that
            :func:`save_class_embeddings` stores. Defaults to False.

    Returns:
        Tensor | tuple[Tensor, dict]: float32 CPU embeddings, (K, D) or
        (K, L, D), and optionally their metadata.
    """
    check_output(output)
    names = resolve_class_names(class_names)
    tmpls = resolve_templates(templates)
    if isinstance(text_encoder, (tuple, list)):
        model, tokenizer = text_encoder
        model = model.eval()
        model_desc, identity = type(model).__name__, None
        kind = encoder.encoder_kind(
            dict(model_type=model.config.model_type,
                 architectures=[type(model).__name__]), model_desc)
    else:
        loc = encoder.locate_text_encoder(text_encoder, revision,
                                          local_files_only,
                                          text_encoder_subfolder)
        identity = encoder.encoder_identity(loc)
        model, tokenizer = encoder.load_located(loc, local_files_only,
                                                device)
        model_desc, kind = os.fspath(text_encoder), loc['kind']
    max_pos = _max_length_limit(model, tokenizer)
    if not 2 <= max_length <= max_pos:
        raise ValueError(f'max_length must be in [2, {max_pos}] for this '
                         f'text encoder, got {max_length}.')
    per_batch = max(1, batch_size // len(tmpls))
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        bar = ProgressBar(len(names), file=sys.stdout)
    rows = []
    for start in range(0, len(names), per_batch):
        group = names[start:start + per_batch]
        prompts = [_prompt(t, n, underscore_to_space)
                   for n in group for t in tmpls]
        feats = _encode(model, tokenizer, prompts, output, max_length,
                        normalize, device, kind)
        feats = feats.view(len(group), len(tmpls), *feats.shape[1:])
        mean = feats.mean(dim=1)
        if normalize:
            mean = mean / mean.norm(dim=-1, keepdim=True)
        rows.append(mean.cpu())
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.file.write('\n')
    embeddings = torch.cat(rows).contiguous()
    if not return_metadata:
        return embeddings
    meta = dict(
        format=FORMAT, model=model_desc, model_identity=identity,
        text_encoder_subfolder=text_encoder_subfolder, encoder=kind,
        pooling=POOLING[kind] if output == 'pooled' else None,
        templates=tmpls, classes=names, output=output, max_length=max_length,
        normalize=normalize, underscore_to_space=underscore_to_space,
        mean_row=False, shape=list(embeddings.shape),
        mmdiff_version=__version__)
    return embeddings, meta
