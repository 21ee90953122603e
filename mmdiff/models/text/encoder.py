"""Finding, identifying and loading a text encoder, with clear errors.

One loader for every text encoder mmdiff uses (class embeddings, the
CaptionPrompts project's captions): :func:`load_text_encoder` accepts

1. a local folder with ``config.json`` and the tokenizer files (a CLIP or
   T5 model saved with ``save_pretrained``; a full ``CLIPModel`` works, its
   vision tower is skipped; a full T5 works, its decoder is skipped);
2. a diffusers pipeline folder: ``text_encoder/`` + ``tokenizer/`` by
   default, or the ``subfolder`` named (SD3 / SD3.5's T5:
   ``text_encoder_3`` + ``tokenizer_3``; FLUX.1's T5: ``text_encoder_2`` +
   ``tokenizer_2``; PixArt-Sigma's T5 is its ``text_encoder``);
3. a Hugging Face hub id (:func:`mmdiff.utils.hub.is_hub_id`) of either, in
   the local hub cache or downloaded, pinned to the commit found;

and refuses anything else, or an incomplete text model, naming the fix.
The model class comes from the folder's ``config.json`` (``model_type`` /
``architectures``, see :data:`ENCODER_KINDS`): ``CLIPTextModel`` +
``CLIPTokenizer``, or ``T5EncoderModel`` + its (T5) tokenizer.
:func:`encoder_identity` says which weights were used (a cache key).
"""
import hashlib
import json
import os
import os.path as osp
import re
from typing import Dict, Optional, Tuple

import torch

from mmdiff.utils.fileio import sha256_file
from mmdiff.utils.hub import is_hub_id

_SAFETENSORS = re.compile(r'model(-\d+-of-\d+)?\.safetensors')
_BIN = re.compile(r'pytorch_model(-\d+-of-\d+)?\.bin')
_META_SUFFIXES = ('.json', '.txt', '.model')
#: ``text_encoder[_N]`` -> ``tokenizer[_N]`` (diffusers' pipeline layout).
_PIPELINE_SUB = re.compile(r'text_encoder(_\d+)?')
#: Encoder kinds: ``config.json`` ``model_type`` values and
#: ``architectures`` entries each is recognised by.
ENCODER_KINDS = {
    'clip': (('clip_text_model', 'clip'),
             ('CLIPTextModel', 'CLIPTextModelWithProjection', 'CLIPModel')),
    't5': (('t5', ), ('T5EncoderModel', 'T5ForConditionalGeneration',
                      'T5Model')),
}
#: Where diffusers pipelines keep their T5 (for error messages and docs).
T5_SUBFOLDERS = ("SD3 / SD3.5: 'text_encoder_3', FLUX.1: 'text_encoder_2', "
                 "PixArt-Sigma: 'text_encoder'")


def _missing_encoder_error(text_encoder: str, local_files_only: bool,
                           detail: str = '') -> OSError:
    where = ' only (local_files_only=True)' if local_files_only else (
        ' or online')
    return OSError(
        f'Cannot find a CLIP text encoder (or a T5 encoder) at '
        f'{text_encoder!r}. Looked for: '
        '(1) a local folder with config.json and its tokenizer files '
        '(a CLIP or T5 model saved with save_pretrained); (2) a Stable '
        'Diffusion folder or another diffusers pipeline with text_encoder/ '
        'and tokenizer/ subfolders (or the subfolder named by '
        'text_encoder_subfolder, e.g. text_encoder_3/ + tokenizer_3/ for '
        'the T5 of SD3); (3) a Hugging '
        f'Face hub id, in the local hub cache'
        f'{where}'
        '. Provide one: e.g. download once with `hf download '
        'openai/clip-vit-large-patch14` (then pass the id, offline with '
        'local_files_only=True) or pass a local folder.'
        + (f' ({detail})' if detail else ''))


def tokenizer_subfolder(subfolder: str) -> str:
    """The tokenizer's subfolder next to the model's ``subfolder``:
    ``text_encoder[_N]`` -> ``tokenizer[_N]`` (diffusers' pipelines), any
    other folder holds its own tokenizer."""
    match = _PIPELINE_SUB.fullmatch(subfolder)
    return 'tokenizer' + (match.group(1) or '') if match else subfolder


def encoder_kind(config: dict, where: str) -> str:
    """``'clip'`` or ``'t5'`` from a ``config.json`` (:data:`ENCODER_KINDS`).

    Args:
        config (dict): The model's ``config.json``.
        where (str): The folder, for the error.

    Raises:
        ValueError: Another model, naming the fix.
    """
    model_type = config.get('model_type')
    archs = config.get('architectures') or []
    for kind, (types, classes) in ENCODER_KINDS.items():
        if model_type in types or any(a in classes for a in archs):
            return kind
    found = ', '.join(archs) or 'no architectures'
    raise ValueError(
        f'{where} holds a {found} (model_type {model_type!r}), not a text '
        'encoder mmdiff loads: CLIP (CLIPTextModel, CLIPModel) or T5 '
        '(T5EncoderModel, T5ForConditionalGeneration). Fix: point '
        'text_encoder_subfolder at the pipeline\'s CLIP or T5 encoder (T5: '
        f'{T5_SUBFOLDERS}), or compute the (K, D) embeddings with that '
        'model yourself and pass the file as class_embeddings.')


def _read_json(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _pipeline_subfolders(path: str) -> list:
    """Subfolders of ``path`` with a ``config.json`` (for errors)."""
    return sorted(d for d in os.listdir(path)
                  if osp.isfile(osp.join(path, d, 'config.json')))


def locate_text_encoder(text_encoder, revision: Optional[str] = None,
                        local_files_only: bool = False,
                        subfolder: Optional[str] = None) -> dict:
    """Where the model and tokenizer live, and which kind, without loading.

    Args:
        text_encoder (str | os.PathLike): Folder or hub id (see the module
            docstring).
        revision (str, optional): Hub revision. Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        subfolder (str, optional): The model's subfolder, e.g.
            ``'text_encoder_3'`` (SD3's T5); its tokenizer is read from
            :func:`tokenizer_subfolder`. Defaults to None: the folder
            itself, else its ``text_encoder/`` (+ ``tokenizer/``).

    Returns:
        dict: ``path`` (local folder or hub id), ``model_sub`` and
        ``tok_sub`` (subfolders or ''), ``revision`` (the commit of a hub
        id), ``hub`` (bool) and ``kind`` (``'clip'`` or ``'t5'``,
        :func:`encoder_kind`).

    Raises:
        OSError: Nothing usable there, naming what was looked for.
        ValueError: Not a CLIP or T5 text encoder.
    """
    path = osp.expanduser(os.fspath(text_encoder))
    sub = (subfolder or '').strip('/')
    layouts = [(sub, tokenizer_subfolder(sub))] if sub else [
        ('text_encoder', 'tokenizer'), ('', '')]
    if osp.isdir(path):
        for model_sub, tok_sub in layouts:
            cfg = osp.join(path, model_sub, 'config.json')
            if osp.isfile(cfg):
                kind = encoder_kind(_read_json(cfg),
                                    osp.join(path, model_sub))
                return dict(path=path, model_sub=model_sub, tok_sub=tok_sub,
                            revision=None, hub=False, kind=kind)
        if sub:
            raise _missing_encoder_error(
                text_encoder, local_files_only,
                f'{path} has no {sub}/config.json; its subfolders with a '
                f'config.json: {_pipeline_subfolders(path) or "none"}')
        raise _missing_encoder_error(
            text_encoder, local_files_only,
            f'{path} exists but has neither config.json nor '
            'text_encoder/config.json')
    if not is_hub_id(path):
        raise _missing_encoder_error(text_encoder, local_files_only,
                                     f'no such folder: {path}')
    # A hub id: fetch (or find in the cache) config.json only, to learn the
    # layout and kind and pin the commit; the weights come later, only when
    # building.
    from huggingface_hub import hf_hub_download
    errors = []
    for model_sub, tok_sub in layouts[::-1]:  # the root first
        try:
            cfg = hf_hub_download(
                path, 'config.json', subfolder=model_sub or None,
                revision=revision, local_files_only=local_files_only)
        except Exception as e:  # noqa: BLE001  (hub errors vary by version)
            errors.append(f'{model_sub or "root"}: {type(e).__name__}')
            continue
        parts = osp.normpath(cfg).split(os.sep)
        commit = parts[parts.index('snapshots') + 1] if (
            'snapshots' in parts) else revision
        kind = encoder_kind(_read_json(cfg),
                            f'{path}/{model_sub}'.rstrip('/'))
        return dict(path=path, model_sub=model_sub, tok_sub=tok_sub,
                    revision=commit, hub=True, kind=kind)
    raise _missing_encoder_error(text_encoder, local_files_only,
                                 '; '.join(errors))


_FILE_HASHES: Dict[tuple, str] = {}


def _file_sha256(path: str) -> str:
    """:func:`sha256_file`, remembered per (path, size, mtime)."""
    st = os.stat(path)
    key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        _FILE_HASHES[key] = sha256_file(path)
    return _FILE_HASHES[key]


def encoder_identity(loc: dict) -> str:
    """A string that changes whenever the encoder's weights/tokenizer do.

    Local folders: sha256 of the weights ``from_pretrained`` reads
    (``model*.safetensors``, else ``pytorch_model*.bin``) and of the
    config/tokenizer files. Hub ids: id + resolved commit + subfolder.

    Args:
        loc (dict): From :func:`locate_text_encoder`.
    """
    if loc['hub']:
        return (f'hub:{loc["path"]}@{loc["revision"]}'
                f'/{loc["model_sub"]}')
    h = hashlib.sha256()
    for sub in sorted({loc['model_sub'], loc['tok_sub']}):
        folder = osp.join(loc['path'], sub)
        files = sorted(f for f in os.listdir(folder)
                       if osp.isfile(osp.join(folder, f)))
        weights = [f for f in files if _SAFETENSORS.fullmatch(f)] or [
            f for f in files if _BIN.fullmatch(f)]
        small = [f for f in files if f.endswith(_META_SUFFIXES)]
        for name in weights + small:
            digest = _file_sha256(osp.join(folder, name))
            h.update(f'{sub}/{name}:{digest}\n'.encode())
    return f'local:sha256:{h.hexdigest()}'


def load_located(loc: dict, local_files_only: bool = False,
                 device: str = 'cpu') -> Tuple[torch.nn.Module, object]:
    """Load the encoder of a located source: ``CLIPTextModel`` +
    ``CLIPTokenizer``, or ``T5EncoderModel`` + ``T5TokenizerFast``, by
    ``loc['kind']``.

    A full ``CLIPModel`` folder (e.g. ``openai/clip-vit-large-patch14``)
    works: its text tower is loaded and the vision/projection weights are
    skipped silently; so does a full T5 (its decoder is skipped); a missing
    text weight is an error.

    Returns:
        tuple: The float32 model in eval mode on ``device``, the tokenizer.
    """
    import transformers
    from transformers.utils import logging as hf_logging
    kind = loc.get('kind', 'clip')
    model_cls, tok_cls = dict(
        clip=(transformers.CLIPTextModel, transformers.CLIPTokenizer),
        # not AutoTokenizer: offline, it wants a config.json that the
        # pipelines' tokenizer folders do not have
        t5=(transformers.T5EncoderModel, transformers.T5TokenizerFast))[kind]
    kw = dict(revision=loc['revision'], local_files_only=local_files_only)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no report of the skipped vision keys
    try:
        model, info = model_cls.from_pretrained(
            loc['path'], subfolder=loc['model_sub'], output_loading_info=True,
            **kw)
        tokenizer = tok_cls.from_pretrained(
            loc['path'], subfolder=loc['tok_sub'], **kw)
    except OSError as e:
        raise _missing_encoder_error(loc['path'], local_files_only,
                                     str(e).splitlines()[0]) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get('missing_keys') or [])
    if missing:
        what = dict(clip='CLIP text encoder', t5='T5 encoder')[kind]
        raise ValueError(
            f'{loc["path"]} ({loc["model_sub"] or "root"}) is not a complete '
            f'{what}: {len(missing)} weights missing, e.g. {missing[:3]}. '
            'Pass a CLIP or T5 model, or a pipeline folder (T5: '
            f'text_encoder_subfolder, {T5_SUBFOLDERS}).')
    return model.to(device=device, dtype=torch.float32).eval(), tokenizer


def load_text_encoder(text_encoder, revision: Optional[str] = None,
                      local_files_only: bool = False,
                      device: str = 'cpu',
                      subfolder: Optional[str] = None
                      ) -> Tuple[torch.nn.Module, object]:
    """Locate and load a CLIP or T5 text encoder and its tokenizer, checked.

    Args:
        text_encoder (str | os.PathLike): Folder or hub id (see the module
            docstring).
        revision (str, optional): Hub revision. Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        device (str): Where to put the model. Defaults to 'cpu'.
        subfolder (str, optional): The model's subfolder in a pipeline
            (see :func:`locate_text_encoder`). Defaults to None.

    Returns:
        tuple: ``(CLIPTextModel, CLIPTokenizer)`` or ``(T5EncoderModel,
        tokenizer)``, the model float32 and in eval mode.

    Raises:
        OSError: Not found, naming the forms accepted.
        ValueError: Not a (complete) CLIP or T5 text encoder.
    """
    loc = locate_text_encoder(text_encoder, revision, local_files_only,
                              subfolder)
    return load_located(loc, local_files_only, device)
