"""Class text embeddings: class names x templates -> CLIP -> K x D.

VPD conditions the U-Net on one CLIP text embedding per class. Its released
files (ADE20K 150 x 768, NYU scenes 27 x 768) came without the script that made
them; :func:`compute_class_embeddings` is that script
(``tools/misc/build_class_embeddings.py`` wraps it, and
:mod:`mmdiff.models.text.cache` caches it for the backbone).

Data path: class names (a host dataset's metainfo, a list or a text file) x
prompt templates -> CLIP tokenizer -> ``CLIPTextModel`` -> ``pooler_output``
(EOS token, ``output='pooled'``, K x D) or ``last_hidden_state``
(``output='tokens'``, K x L x D), averaged over the templates.

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


def _prompt(template: str, name: str, underscore_to_space: bool) -> str:
    if underscore_to_space:
        name = name.replace('_', ' ')
    return template.replace('{}', name)


@torch.no_grad()
def _encode(model, tokenizer, prompts: List[str], output: str,
            max_length: int, normalize: bool, device: str) -> Tensor:
    ids = tokenizer(prompts, padding='max_length', max_length=max_length,
                    truncation=True, return_tensors='pt').input_ids
    # Like Stable Diffusion (and ldm's FrozenCLIPEmbedder), no attention
    # mask: padding is EOS, and the causal mask keeps it out of earlier
    # positions, so the pooled EOS feature does not depend on max_length.
    out = model(input_ids=ids.to(device))
    feats = out.pooler_output if output == 'pooled' else out.last_hidden_state
    feats = feats.float()
    if normalize:
        feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats


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
                             return_metadata: bool = False):
    """Encode every class with every template and average over templates.

    Args:
        class_names (str | Sequence[str]): see :func:`resolve_class_names`.
        text_encoder (str | tuple): a hub id
            (``openai/clip-vit-large-patch14``), a local CLIP folder, a
            Stable Diffusion folder (its ``text_encoder``/``tokenizer``
            subfolders are used), or an already loaded
            ``(CLIPTextModel, tokenizer)`` pair.
        templates (str | Sequence[str]): ``'vpd'``, ``'imagenet80'``, a list
            or a text file. Defaults to ``'vpd'``.
        output (str): ``'pooled'`` -> (K, D) ``pooler_output`` (EOS token),
            as VPD; ``'tokens'`` -> (K, L, D) ``last_hidden_state``.
            Defaults to ``'pooled'``.
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
    else:
        loc = encoder.locate_text_encoder(text_encoder, revision,
                                          local_files_only)
        identity = encoder.encoder_identity(loc)
        model, tokenizer = encoder.load_located(loc, local_files_only,
                                                device)
        model_desc = os.fspath(text_encoder)
    max_pos = model.config.max_position_embeddings
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
                        normalize, device)
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
        templates=tmpls, classes=names, output=output, max_length=max_length,
        normalize=normalize, underscore_to_space=underscore_to_space,
        mean_row=False, shape=list(embeddings.shape),
        mmdiff_version=__version__)
    return embeddings, meta
