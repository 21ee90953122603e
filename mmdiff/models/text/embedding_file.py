"""Class-embedding files: ours (``.pth`` / ``.safetensors`` + metadata) and
the files VPD and mmseg released.

Written atomically (:func:`mmdiff.utils.fileio.atomic_write`), with a
``<path>.json`` sidecar that repeats the metadata.
"""
import json
import os
import os.path as osp
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from mmdiff.utils.fileio import atomic_write, atomic_write_json, torch_save


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
            torch_save({'class_embeddings': tensor, 'meta': meta}, tmp)
    elif path.endswith('.safetensors'):
        from safetensors.torch import save_file

        def write(tmp):
            save_file({'class_embeddings': tensor}, tmp,
                      metadata={'mmdiff': json.dumps(meta)})
    else:
        raise ValueError(f'Cannot save class embeddings to {path!r}: use a '
                         '.pth, .pt or .safetensors suffix.')
    atomic_write(path, write)
    atomic_write_json(path + '.json', meta, indent=1)
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
        tensor, meta = _read_safetensors(path)
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
        try:
            with open(path + '.json', encoding='utf-8') as f:
                meta = json.load(f)
        except ValueError as e:
            raise ValueError(
                f'{path}.json (the metadata of {path}) is damaged: {e}. Fix: '
                'rebuild both files (tools/misc/build_class_embeddings.py) '
                'or delete the .json file.') from e
    return tensor, meta


def _read_safetensors(path: str) -> Tuple[Tensor, dict]:
    """The class-embedding tensor and mmdiff metadata of a safetensors
    file; a damaged file is named with the fix."""
    from safetensors import SafetensorError, safe_open
    try:
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
        meta = json.loads(header['mmdiff']) if 'mmdiff' in header else {}
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise ValueError(
            f'Cannot read the class embeddings {path}: {e} (the file is '
            'truncated or damaged). Fix: rebuild it (`python tools/misc/'
            f'build_class_embeddings.py ... --out {path}`; a file in the '
            'class-embedding cache is rebuilt when it is used) or delete '
            'it.') from e
    return tensor, meta
