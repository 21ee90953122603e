"""Finding, identifying and loading a CLIP text encoder, with clear errors.

One loader for every text encoder mmdiff uses (class embeddings, the
CaptionPrompts project's captions): :func:`load_text_encoder` accepts

1. a local folder with ``config.json`` and the tokenizer files (a CLIP
   model saved with ``save_pretrained``; a full ``CLIPModel`` works, its
   vision tower is skipped);
2. a Stable Diffusion folder with ``text_encoder/`` and ``tokenizer/``;
3. a Hugging Face hub id (:func:`mmdiff.utils.hub.is_hub_id`), in the local
   hub cache or downloaded, pinned to the commit found;

and refuses anything else, or an incomplete text model, naming the fix.
:func:`encoder_identity` says which weights were used (a cache key).
"""
import hashlib
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


def _missing_encoder_error(text_encoder: str, local_files_only: bool,
                           detail: str = '') -> OSError:
    where = ' only (local_files_only=True)' if local_files_only else (
        ' or online')
    return OSError(
        f'Cannot find a CLIP text encoder at {text_encoder!r}. Looked for: '
        '(1) a local folder with config.json and its tokenizer files '
        '(a CLIP model saved with save_pretrained); (2) a Stable Diffusion '
        'folder with text_encoder/ and tokenizer/ subfolders; (3) a Hugging '
        f'Face hub id, in the local hub cache'
        f'{where}'
        '. Provide one: e.g. download once with `hf download '
        'openai/clip-vit-large-patch14` (then pass the id, offline with '
        'local_files_only=True) or pass a local folder.'
        + (f' ({detail})' if detail else ''))


def locate_text_encoder(text_encoder, revision: Optional[str] = None,
                        local_files_only: bool = False) -> dict:
    """Where the model and tokenizer live, without loading them.

    Args:
        text_encoder (str | os.PathLike): Folder or hub id (see the module
            docstring).
        revision (str, optional): Hub revision. Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.

    Returns:
        dict: ``path`` (local folder or hub id), ``model_sub`` and
        ``tok_sub`` (subfolders or ''), ``revision`` (the commit of a hub
        id) and ``hub`` (bool).

    Raises:
        OSError: Nothing usable there, naming what was looked for.
    """
    path = osp.expanduser(os.fspath(text_encoder))
    if osp.isdir(path):
        if osp.isfile(osp.join(path, 'text_encoder', 'config.json')):
            return dict(path=path, model_sub='text_encoder',
                        tok_sub='tokenizer', revision=None, hub=False)
        if osp.isfile(osp.join(path, 'config.json')):
            return dict(path=path, model_sub='', tok_sub='', revision=None,
                        hub=False)
        raise _missing_encoder_error(
            text_encoder, local_files_only,
            f'{path} exists but has neither config.json nor '
            'text_encoder/config.json')
    if not is_hub_id(path):
        raise _missing_encoder_error(text_encoder, local_files_only,
                                     f'no such folder: {path}')
    # A hub id: fetch (or find in the cache) config.json only, to learn the
    # layout and pin the commit; the weights come later, only when building.
    from huggingface_hub import hf_hub_download
    errors = []
    for model_sub, tok_sub in (('', ''), ('text_encoder', 'tokenizer')):
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
        return dict(path=path, model_sub=model_sub, tok_sub=tok_sub,
                    revision=commit, hub=True)
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
    """Load ``CLIPTextModel`` + ``CLIPTokenizer`` from a located source.

    A full ``CLIPModel`` folder (e.g. ``openai/clip-vit-large-patch14``)
    works: its text tower is loaded and the vision/projection weights are
    skipped silently; a missing text weight is an error.

    Returns:
        tuple: The float32 model in eval mode on ``device``, the tokenizer.
    """
    from transformers import CLIPTextModel, CLIPTokenizer
    from transformers.utils import logging as hf_logging
    kw = dict(revision=loc['revision'], local_files_only=local_files_only)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no report of the skipped vision keys
    try:
        model, info = CLIPTextModel.from_pretrained(
            loc['path'], subfolder=loc['model_sub'], output_loading_info=True,
            **kw)
        tokenizer = CLIPTokenizer.from_pretrained(
            loc['path'], subfolder=loc['tok_sub'], **kw)
    except OSError as e:
        raise _missing_encoder_error(loc['path'], local_files_only,
                                     str(e).splitlines()[0]) from e
    finally:
        hf_logging.set_verbosity(verbosity)
    missing = sorted(info.get('missing_keys') or [])
    if missing:
        raise ValueError(
            f'{loc["path"]} ({loc["model_sub"] or "root"}) is not a complete '
            f'CLIP text encoder: {len(missing)} weights missing, e.g. '
            f'{missing[:3]}. Pass a CLIP model or a Stable Diffusion folder.')
    return model.to(device=device, dtype=torch.float32).eval(), tokenizer


def load_text_encoder(text_encoder, revision: Optional[str] = None,
                      local_files_only: bool = False,
                      device: str = 'cpu') -> Tuple[torch.nn.Module, object]:
    """Locate and load a CLIP text encoder and its tokenizer, checked.

    Args:
        text_encoder (str | os.PathLike): Folder or hub id (see the module
            docstring).
        revision (str, optional): Hub revision. Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        device (str): Where to put the model. Defaults to 'cpu'.

    Returns:
        tuple: ``(CLIPTextModel, CLIPTokenizer)``, the model float32 and in
        eval mode.

    Raises:
        OSError: Not found, naming the forms accepted.
        ValueError: Not a complete CLIP text encoder.
    """
    loc = locate_text_encoder(text_encoder, revision, local_files_only)
    return load_located(loc, local_files_only, device)
