"""Class text embeddings that anyone can rebuild: class names -> CLIP -> K x D.

VPD conditions the U-Net on one CLIP text embedding per class. Its released
files (ADE20K 150 x 768, NYU scenes 27 x 768) came without the script that made
them; this module is that script, plus a disk cache so a backbone can build
its embeddings from class names at construction time.

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
import hashlib
import json
import os
import os.path as osp
import re
import sys
import tempfile
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from mmdiff.version import __version__
from .prompts import (CLASS_NAME_SETS, IMAGENET_TEMPLATES, TEMPLATE_SETS,
                      VPD_TEMPLATES, NameSpec, resolve_class_names,
                      resolve_templates)

__all__ = [
    'CLASS_NAME_SETS', 'TEMPLATE_SETS', 'VPD_TEMPLATES',
    'IMAGENET_TEMPLATES', 'resolve_class_names', 'resolve_templates',
    'compute_class_embeddings', 'save_class_embeddings',
    'load_class_embeddings', 'get_or_build_class_embeddings',
    'append_mean_row', 'default_cache_dir'
]

OUTPUTS = ('pooled', 'tokens')
_FORMAT = 'mmdiff.class_embeddings/1'
_SAFETENSORS = re.compile(r'model(-\d+-of-\d+)?\.safetensors')
_BIN = re.compile(r'pytorch_model(-\d+-of-\d+)?\.bin')
_META_SUFFIXES = ('.json', '.txt', '.model')
_HUB_ID = re.compile(r'^[\w.-]+(/[\w.-]+)?$')

def append_mean_row(embeddings: Tensor) -> Tensor:
    """Append the mean over classes as an extra row, as mmseg's VPD does.

    mmseg's ``VPD(class_embed_select=True)`` concatenates
    ``embeddings.mean(0)`` to the 27 NYU scene embeddings (row 27 = unknown
    scene), so its depth checkpoints hold 28 rows.
    """
    return torch.cat([embeddings, embeddings.mean(dim=0, keepdim=True)], 0)


# --------------------------------------------------------------------------
# Text encoder location, identity and loading
# --------------------------------------------------------------------------
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


def _locate(text_encoder: str, revision: Optional[str],
            local_files_only: bool) -> dict:
    """Where the model and tokenizer live, without loading them.

    Returns a dict with ``path`` (local folder or hub id), ``model_sub`` and
    ``tok_sub`` (subfolders or ''), ``revision`` and ``hub`` (bool).
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
    if osp.isabs(path) or path.startswith('.') or not _HUB_ID.match(path):
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
    st = os.stat(path)
    key = (osp.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def _identity(loc: dict) -> str:
    """A string that changes whenever the encoder's weights/tokenizer do.

    Local folders: sha256 of the weights ``from_pretrained`` reads
    (``model*.safetensors``, else ``pytorch_model*.bin``) and of the
    config/tokenizer files. Hub ids: id + resolved commit + subfolder.
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


def _load_text_encoder(loc: dict, local_files_only: bool, device: str):
    """Load ``CLIPTextModel`` + ``CLIPTokenizer`` from a located source.

    A full ``CLIPModel`` folder (e.g. ``openai/clip-vit-large-patch14``)
    works: its text tower is loaded and the vision/projection weights are
    skipped silently; a missing text weight is an error.
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


# --------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------
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
    if output not in OUTPUTS:
        raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}.')
    names = resolve_class_names(class_names)
    tmpls = resolve_templates(templates)
    if isinstance(text_encoder, (tuple, list)):
        model, tokenizer = text_encoder
        model = model.eval()
        model_desc, identity = type(model).__name__, None
    else:
        loc = _locate(text_encoder, revision, local_files_only)
        identity = _identity(loc)
        model, tokenizer = _load_text_encoder(loc, local_files_only, device)
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
        format=_FORMAT, model=model_desc, model_identity=identity,
        templates=tmpls, classes=names, output=output, max_length=max_length,
        normalize=normalize, underscore_to_space=underscore_to_space,
        mean_row=False, shape=list(embeddings.shape),
        mmdiff_version=__version__)
    return embeddings, meta


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------
def _atomic_write(path: str, write) -> None:
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-',
                               suffix=osp.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def save_class_embeddings(path: Union[str, os.PathLike], embeddings: Tensor,
                          metadata: Optional[dict] = None) -> str:
    """Write embeddings (+ metadata) atomically, and a ``<path>.json``.

    ``.pth``/``.pt``: ``{'class_embeddings': tensor, 'meta': dict}`` with
    plain types only (``torch.load(weights_only=True)`` works).
    ``.safetensors``: tensor ``class_embeddings``, metadata as JSON under the
    header key ``mmdiff``.

    Returns:
        str: the path written.
    """
    path = os.fspath(path)
    meta = json.loads(json.dumps(metadata or {}))  # plain types, or raise
    tensor = embeddings.detach().cpu().contiguous()
    if path.endswith(('.pth', '.pt')):
        def write(tmp):
            torch.save({'class_embeddings': tensor, 'meta': meta}, tmp)
    elif path.endswith('.safetensors'):
        from safetensors.torch import save_file

        def write(tmp):
            save_file({'class_embeddings': tensor}, tmp,
                      metadata={'mmdiff': json.dumps(meta)})
    else:
        raise ValueError(f'Cannot save class embeddings to {path!r}: use a '
                         '.pth, .pt or .safetensors suffix.')
    _atomic_write(path, write)

    def write_json(tmp):
        with open(tmp, 'w', encoding='utf-8') as f:
            json.dump(meta, f, indent=1)
            f.write('\n')
    _atomic_write(path + '.json', write_json)
    return path


def load_class_embeddings(
        path: Union[str, os.PathLike]) -> Tuple[Tensor, dict]:
    """Load embeddings written here, or VPD's/mmseg's released files.

    Accepts our ``.pth``/``.safetensors`` files, a bare tensor ``.pth`` (VPD's
    released ``class_embeddings.pth``), and a dict holding
    ``'class_embeddings'`` or ``'embeddings'``. Loads with
    ``weights_only=True``. Metadata falls back to a ``<path>.json`` sidecar.

    Returns:
        tuple[Tensor, dict]: float embeddings (K, D) or (K, L, D), metadata
        (empty when the file has none).
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Class embeddings file {path!r} does not exist. Build it with '
            '`python tools/misc/build_class_embeddings.py --classes ... '
            f'--text-encoder ... --out {path}`.')
    meta: dict = {}
    if path.endswith('.safetensors'):
        from safetensors import safe_open
        with safe_open(path, framework='pt') as f:
            keys = list(f.keys())
            key = 'class_embeddings' if 'class_embeddings' in keys else (
                keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(
                    f'{path} holds tensors {keys}, none named '
                    "'class_embeddings'.")
            tensor = f.get_tensor(key)
            header = f.metadata() or {}
        if 'mmdiff' in header:
            meta = json.loads(header['mmdiff'])
    else:
        from mmdiff.utils.checkpoint_io import CheckpointError, read_checkpoint
        try:
            obj = read_checkpoint(path)
        except CheckpointError as e:
            raise ValueError(
                f'Cannot read {path} as a weights-only torch file ({e}). '
                'Expected a tensor or a dict with a "class_embeddings" '
                'tensor.') from e
        if isinstance(obj, dict):
            key = next((k for k in ('class_embeddings', 'embeddings')
                        if k in obj), None)
            if key is None:
                raise ValueError(
                    f'{path} holds a dict with keys {sorted(obj)[:10]}, but '
                    "no 'class_embeddings' or 'embeddings'.")
            tensor, meta = obj[key], dict(obj.get('meta') or {})
        else:
            tensor = obj
    if not (isinstance(tensor, Tensor) and tensor.is_floating_point()
            and tensor.dim() in (2, 3)):
        raise ValueError(
            f'{path} does not hold class embeddings: expected a float tensor '
            f'of shape (K, D) or (K, L, D), got {type(tensor).__name__} '
            f'{tuple(getattr(tensor, "shape", ()))}.')
    if not meta and osp.isfile(path + '.json'):
        with open(path + '.json', encoding='utf-8') as f:
            meta = json.load(f)
    return tensor, meta


# --------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------
def default_cache_dir() -> str:
    """``$MMDIFF_CACHE/class_embeddings``, else
    ``~/.cache/mmdiff/class_embeddings``."""
    root = os.environ.get('MMDIFF_CACHE') or osp.join('~', '.cache', 'mmdiff')
    return osp.join(osp.expanduser(root), 'class_embeddings')


def get_or_build_class_embeddings(class_names: NameSpec,
                                  text_encoder: Union[str, os.PathLike],
                                  templates: NameSpec = 'vpd',
                                  output: str = 'pooled',
                                  cache_dir: Optional[str] = None,
                                  local_files_only: bool = False,
                                  max_length: int = 77,
                                  mean_row: bool = False,
                                  **kwargs) -> Tensor:
    """:func:`compute_class_embeddings`, cached on disk.

    The cache key is the sha256 of the class names, templates, output,
    max_length, ``normalize``/``underscore_to_space`` and the encoder's
    identity (sha256 of a local folder's weight/tokenizer files, or hub id +
    commit). A hit loads the file without loading the text encoder.

    Args:
        cache_dir (str, optional): defaults to :func:`default_cache_dir`.
        mean_row (bool): append the mean row (:func:`append_mean_row`)
            after loading/building. Defaults to False.
        **kwargs: passed to :func:`compute_class_embeddings` (``device``,
            ``batch_size``, ``progress``, ``normalize``,
            ``underscore_to_space``, ``revision``).
    """
    from mmengine.logging import print_log
    if output not in OUTPUTS:
        raise ValueError(f'output must be one of {OUTPUTS}, got {output!r}.')
    names = resolve_class_names(class_names)
    tmpls = resolve_templates(templates)
    loc = _locate(text_encoder, kwargs.get('revision'), local_files_only)
    key_src = dict(
        format=_FORMAT, classes=names, templates=tmpls, output=output,
        max_length=max_length, normalize=kwargs.get('normalize', False),
        underscore_to_space=kwargs.get('underscore_to_space', True),
        model_identity=_identity(loc))
    key = hashlib.sha256(
        json.dumps(key_src, sort_keys=True).encode()).hexdigest()
    file = osp.join(cache_dir or default_cache_dir(),
                    f'{key[:24]}.safetensors')
    if osp.isfile(file):
        embeddings, meta = load_class_embeddings(file)
        if meta.get('cache_key') == key:
            print_log(f'Class embeddings: cache hit {file}', logger='current')
            return append_mean_row(embeddings) if mean_row else embeddings
    print_log(f'Class embeddings: building {len(names)} classes x '
              f'{len(tmpls)} templates with {text_encoder} -> {file}',
              logger='current')
    embeddings, meta = compute_class_embeddings(
        names, text_encoder, tmpls, output=output, max_length=max_length,
        local_files_only=local_files_only, return_metadata=True, **kwargs)
    meta['cache_key'] = key
    save_class_embeddings(file, embeddings, meta)
    return append_mean_row(embeddings) if mean_row else embeddings
