"""The one path every mmdiff tool reads a checkpoint file through.

:func:`read_checkpoint` (and :func:`verify_checkpoint`, which checks without
keeping the result) is used by ``tools/train.py`` (``load_from``,
``--resume``), ``tools/test.py``, the model converters, ``publish_model``,
``pretrained=`` single files, ``unet_weights=`` and the other weight files
the backbone reads. In order, it:

1. resolves ``file://``, ``http(s)://`` and other mmengine file-backend URLs
   to a local file, so URLs get every check below (downloads land in torch's
   hub cache, in a folder named from the whole URL: two URLs ending in the
   same file name never share a copy; a copy whose name carries a sha256
   prefix is downloaded again when it no longer matches);
2. refuses a missing, unreadable (permission) or empty file;
3. verifies the sha256 when the file name carries its first hex digits
   (``publish_model``'s ``<name>-<sha256[:8]>.pth``, torch hub's
   ``<name>-<hex>.pth``);
4. checks every member of a zip checkpoint (torch >= 1.6) against its CRC
   before anything is built, and recognises a truncated zip;
5. loads with ``weights_only=True`` (passed explicitly, so
   ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot turn it off); legacy
   (non-zip) torch files are read the same way, without ``mmap``.

Each failure raises :class:`CheckpointError` naming the file, the problem
and the fix. A file holding Python objects outside the weights-only
allow-list is reported as such (never as "corrupted"); only then may a
caller that asked for ``trust_pickle`` unpickle it fully, after a warning.

:func:`check_finite` refuses weights holding NaN/inf;
:func:`verify_weights_folder` checks a diffusers folder (each weight file
diffusers would read, then the sha256 list an mmdiff export records).
"""
import hashlib
import json
import os
import os.path as osp
import pickle
import re
import sys
import zipfile
from typing import Any, Dict, Iterable, Optional

import torch

from .fileio import (atomic_write_bytes, explain_write_errors,  # noqa: F401
                     sha256_file, sha256_tree)

#: ``publish_model`` names files ``<stem>-<sha256[:8]>.<ext>``, torch hub
#: ``<stem>-<sha256 prefix>.<ext>``.
HASH_NAME = re.compile(
    r'-([0-9a-f]{8,64})\.(?:pth|pt|ckpt|bin|safetensors)$')
#: Files holding weights (in a diffusers folder: what diffusers reads).
WEIGHT_SUFFIXES = ('.safetensors', '.bin', '.pth', '.pt', '.ckpt')
#: The meta file of a folder exported by ``DiffusionPretrainer``; its
#: ``sha256`` entry lists the weight files as exported.
PRETRAIN_META = 'mmdiff_pretrain.json'
_UNSAFE_MARKERS = ('GLOBAL', 'Unsupported global', 'not an allowed global',
                   'Unsupported class', 'Unsupported operand',
                   'Refusing getattr', 'Can only build Tensor',
                   'Trying to call reduce', 'Unsupported operation')


#: Files whose bytes passed the CRC/sha256 checks: (path, size, mtime_ns).
_VERIFIED = set()
#: Hash-named files whose sha256 matched their name: (path, size, mtime_ns).
_HASHED = set()


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used, with the reason and the fix."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint whose pickle holds objects outside the allow-list."""


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:200] if lines else 'no message'


def _cache_path(url: str) -> str:
    """``<torch hub>/checkpoints/url-<sha256(url)[:16]>/<file name>``."""
    name = osp.basename(url.split('?')[0]) or 'checkpoint'
    key = hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', f'url-{key}', name)


def _download(url: str) -> str:
    """A local copy of ``url`` in torch's hub cache.

    The copy lives in ``checkpoints/url-<sha256(url)[:16]>/<file name>``:
    keyed by the whole URL, so another URL ending in the same file name gets
    its own copy. A copy whose name carries a sha256 prefix (torch hub,
    ``publish_model``) is checked against it and downloaded again when it
    no longer matches.
    """
    dst = _cache_path(url)
    if osp.isfile(dst):
        try:
            _check_hash(dst, url)
            return dst
        except CheckpointError as e:
            print(f'{e}\nDownloading {url} again.', file=sys.stderr)
            os.remove(dst)
    os.makedirs(osp.dirname(dst), exist_ok=True)
    print(f'Downloading {url} to {dst}', file=sys.stderr, flush=True)
    try:  # torch writes a temp file and renames it: no partial copy
        torch.hub.download_url_to_file(url, dst, progress=False)
    except Exception as e:  # URLError, HTTPError, timeouts
        raise CheckpointError(
            f'Checkpoint {url!r} could not be downloaded '
            f'({type(e).__name__}: {e}). Fix: check the URL and the '
            'network, or download it yourself and pass the local '
            'path.') from e
    try:
        _check_hash(dst, url)
    except CheckpointError:
        os.remove(dst)  # never served from the cache
        raise
    return dst


def _zoo_url(path: str) -> Optional[str]:
    """The URL (or mmengine-home file) behind mmengine's model-zoo schemes,
    looked up as mmengine's own loaders do; None for other schemes."""
    from mmengine.runner import checkpoint as ck
    scheme, name = path.split('://', 1)
    try:
        if scheme in ('open-mmlab', 'openmmlab'):
            name = ck.get_deprecated_model_names().get(name, name)
            urls = ck.get_external_models()
        elif scheme == 'mmcls':
            urls = ck.get_mmcls_models()
        elif scheme in ('torchvision', 'modelzoo'):
            urls = ck.get_torchvision_models()
        else:
            return None
    except Exception as e:  # e.g. torchvision not installed
        raise CheckpointError(
            f'Checkpoint {path!r} cannot be resolved ({type(e).__name__}: '
            f'{e}). Fix: download it and pass the local path.') from e
    if name not in urls:
        raise CheckpointError(
            f'Checkpoint {path!r}: no model {name!r} in mmengine\'s '
            f'{scheme}:// list. Fix: check the name, or pass a local path.')
    url = urls[name]
    if url.startswith(('http://', 'https://')):
        return url
    return osp.join(ck._get_mmengine_home(), url)


def resolve_checkpoint_path(path: str) -> str:
    """The local file behind ``path`` (a path or a URL).

    Raises:
        CheckpointError: When a URL cannot be fetched.
    """
    path = str(path)
    if '://' not in path:
        return osp.expanduser(path)
    scheme = path.split('://', 1)[0].lower()
    if scheme == 'file':
        return path[len('file://'):]
    if scheme in ('http', 'https'):
        return _download(path)
    zoo = _zoo_url(path)
    if zoo is not None:  # open-mmlab://, mmcls://, torchvision://
        return _download(zoo) if '://' in zoo else zoo
    # other mmengine backends (petrel, s3, ...): copy through mmengine.fileio
    from mmengine.fileio import get
    dst = _cache_path(path)
    os.makedirs(osp.dirname(dst), exist_ok=True)
    try:
        data = get(path)
    except Exception as e:
        raise CheckpointError(
            f'Checkpoint {path!r}: no mmengine file backend can read '
            f'{scheme}:// ({type(e).__name__}: {e}). Fix: download the '
            'file and pass its local path.') from e
    return atomic_write_bytes(dst, data)


def _check_file(path: str, shown: str) -> None:
    if not osp.exists(path):
        raise FileNotFoundError(
            f'Checkpoint {shown!r} does not exist. Fix: check the path (a '
            'work_dir holds iter_N.pth / epoch_N.pth and last_checkpoint), '
            'train one with tools/train.py, or convert a released one with '
            'tools/model_converters/.')
    if not osp.isfile(path):
        raise CheckpointError(f'Checkpoint {shown!r} is a folder, not a '
                              'file. Fix: pass the .pth file inside it.')
    try:
        with open(path, 'rb'):
            pass
    except PermissionError as e:
        raise CheckpointError(
            f'Checkpoint {shown!r} cannot be read: permission denied. Fix: '
            f'make it readable (chmod a+r {path}) or run as its owner.'
        ) from e
    if osp.getsize(path) == 0:
        raise CheckpointError(
            f'Checkpoint {shown!r} is empty (0 bytes): an interrupted save '
            'or download. Fix: use an earlier checkpoint of the run '
            '(tools/train.py --resume PATH), or download/convert it again.')


def _check_hash(path: str, shown: str) -> None:
    match = HASH_NAME.search(osp.basename(path))
    if match is None:
        return
    stat = os.stat(path)
    key = (osp.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key in _HASHED:
        return
    digest, prefix = sha256_file(path), match.group(1)
    if not digest.startswith(prefix):
        raise CheckpointError(
            f'Checkpoint {shown!r} is damaged: its name carries the sha256 '
            f'prefix {prefix} (publish_model / torch hub convention) but '
            f'the file hashes to {digest[:len(prefix)]}... Fix: download or publish it again; if the suffix is not a '
            'hash, rename the file.')
    _HASHED.add(key)


def _check_zip(path: str, shown: str) -> bool:
    """CRC-check a zip checkpoint; False for a non-zip (legacy) file."""
    with open(path, 'rb') as f:
        head = f.read(4)
    corrupted = (f'Checkpoint {shown!r} is truncated or corrupted ('
                 '{}). Fix: use an earlier checkpoint of the run '
                 '(tools/train.py --resume PATH), or download/convert it '
                 'again.')
    if not zipfile.is_zipfile(path):
        if head == b'PK\x03\x04':
            raise CheckpointError(corrupted.format(
                'zip archive without its end: the save or download was cut '
                'short'))
        if head[:1] != b'\x80':  # pickle protocol >= 2: legacy torch.save
            raise CheckpointError(
                f'Checkpoint {shown!r} is not a PyTorch checkpoint (it '
                f'starts with {head!r}). Fix: pass a .pth written by '
                'torch.save / tools/train.py, or a .safetensors file.')
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise CheckpointError(corrupted.format(f'{type(e).__name__}: {e}')
                              ) from e
    except Exception as e:  # zlib.error, ...
        raise CheckpointError(corrupted.format(f'{type(e).__name__}: {e}')
                              ) from e
    if bad is not None:
        raise CheckpointError(corrupted.format(
            f'member {bad!r} fails its CRC-32 check'))
    return True


def _warn_trusted(shown: str, reason: str) -> None:
    bar = '!' * 78
    print(f'{bar}\nWARNING: --trust-pickle: fully unpickling {shown!r}.\n'
          f'It holds Python objects outside the weights-only allow-list '
          f'({reason}).\nUnpickling can RUN ARBITRARY CODE from this file. '
          f'Go on only if you know where the file comes from.\n{bar}',
          file=sys.stderr, flush=True)


def _load_safetensors(path: str, shown: str, header_only: bool = False):
    """The tensors of a safetensors file; with ``header_only`` only its
    header and the byte ranges it lists are checked (a truncated file
    fails there), no tensor is read."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    try:
        if header_only:
            with safe_open(path, framework='pt') as f:
                f.keys()
            return None
        return load_file(path, device='cpu')
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f'Checkpoint {shown!r} is truncated or corrupted (safetensors: '
            f'{e}). Fix: download or convert it again.') from e


def read_checkpoint(path: str, trust_pickle: bool = False,
                    mmap: bool = False, shown: Optional[str] = None) -> Any:
    """Check and load a checkpoint file, weights only.

    Args:
        path (str): A local path or a URL (see
            :func:`resolve_checkpoint_path`).
        trust_pickle (bool): When the file holds objects outside the
            weights-only allow-list, unpickle it fully after a loud warning
            (code from the file may run). Never used for truncated or
            corrupted files. Defaults to False.
        mmap (bool): Map zip checkpoints instead of reading them into
            memory. Defaults to False.
        shown (str, optional): Name used in messages. Defaults to ``path``.

    Returns:
        The loaded object (tensors on CPU).

    Raises:
        FileNotFoundError | CheckpointError | UnsafeCheckpointError: Naming
            the file, the problem and the fix.
    """
    from .checkpoint import register_checkpoint_safe_globals
    shown = shown or str(path)
    local = resolve_checkpoint_path(path)
    _check_file(local, shown)
    stat = os.stat(local)
    key = (osp.realpath(local), stat.st_size, stat.st_mtime_ns)
    if local.endswith('.safetensors'):
        _check_hash(local, shown)
        return _load_safetensors(local, shown)
    if key in _VERIFIED:  # checked a moment ago (pre-check, then load)
        is_zip = zipfile.is_zipfile(local)
    else:
        _check_hash(local, shown)
        is_zip = _check_zip(local, shown)
    register_checkpoint_safe_globals()
    try:
        obj = torch.load(local, map_location='cpu', weights_only=True,
                         mmap=mmap and is_zip)
        _VERIFIED.add(key)
        return obj
    except pickle.UnpicklingError as e:
        text = str(e)
        if not any(m in text for m in _UNSAFE_MARKERS):
            raise CheckpointError(
                f'Checkpoint {shown!r} is truncated or corrupted '
                f'({_first_line(e)}). Fix: use an earlier '
                'checkpoint of the run, or download/convert it again.'
            ) from e
        reason = next((line.strip() for line in text.splitlines()
                       if any(m in line for m in _UNSAFE_MARKERS)),
                      _first_line(e))[:300]
        if not trust_pickle:
            raise UnsafeCheckpointError(
                f'Checkpoint {shown!r} was refused: it holds Python objects '
                f'outside the weights-only allow-list ({reason}); loading it '
                'fully would run code from the file. It was NOT loaded. '
                'Fix: get the weights from a trusted source; if you wrote '
                'the file yourself, re-save its tensors with '
                'tools/model_converters/publish_model.py IN OUT '
                '--trust-pickle.') from e
    except Exception as e:  # EOFError, RuntimeError, ...
        raise CheckpointError(
            f'Checkpoint {shown!r} is truncated or corrupted ('
            f'{type(e).__name__}: {_first_line(e)}). Fix: use '
            'an earlier checkpoint of the run (tools/train.py --resume PATH), '
            'or download/convert it again.') from e
    _warn_trusted(shown, reason)
    return torch.load(local, map_location='cpu', weights_only=False)


def verify_checkpoint(path: str, shown: Optional[str] = None) -> str:
    """Run every check of :func:`read_checkpoint`; return the local path.

    A safetensors file is not read into memory: its hash (when named) and
    its header are checked.
    """
    local = resolve_checkpoint_path(path)
    shown = shown or str(path)
    if local.endswith('.safetensors'):
        _check_file(local, shown)
        _check_hash(local, shown)
        _load_safetensors(local, shown, header_only=True)
    else:
        read_checkpoint(local, mmap=True, shown=shown)
    return local




def non_finite_tensors(state: Dict[str, Any]) -> list:
    """Names of the floating-point tensors in ``state`` holding NaN/inf."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()
            and not bool(torch.isfinite(v).all())]


def check_finite(state: Dict[str, Any], shown: str) -> None:
    """Refuse weights holding NaN/inf (they make every prediction NaN: a
    segmentor then labels every pixel class 0 and still prints metrics).

    Raises:
        CheckpointError: Naming ``shown``, the tensors and the fix.
    """
    bad = non_finite_tensors(state)
    if not bad:
        return
    more = f' ... ({len(bad)} tensors in all)' if len(bad) > 5 else ''
    raise CheckpointError(
        f'{shown} holds non-finite weights (NaN/inf) in '
        f'{", ".join(bad[:5])}{more}. A model with them predicts NaN, so '
        'its results would be meaningless; nothing was evaluated or trained '
        'with it. Fix: use an earlier checkpoint of the run (a NaN guard '
        'keeps last_finite.pth), or train again with a lower learning rate.')


def weight_files(folder: str) -> list:
    """The weight files diffusers reads from a model folder (``unet/``):
    ``diffusion_pytorch_model*.safetensors``, else ``*.bin`` (diffusers
    prefers safetensors), variants (``.fp16.``) left out."""
    if not osp.isdir(folder):
        return []
    names = sorted(os.listdir(folder))
    for suffix in ('.safetensors', '.bin'):
        found = [n for n in names if re.fullmatch(
            r'diffusion_pytorch_model(-\d+-of-\d+)?' + re.escape(suffix), n)]
        if found:
            return [osp.join(folder, n) for n in found]
    return []


def weight_hashes(folder: str) -> Dict[str, str]:
    """``{relative path: sha256}`` of the weight files below ``folder``
    (what an export records in :data:`PRETRAIN_META`)."""
    return {rel: digest for rel, digest in sha256_tree(folder).items()
            if rel.endswith(WEIGHT_SUFFIXES)}


def _recorded_hashes(folder: str, shown: str) -> Dict[str, str]:
    """The ``sha256`` entry of ``folder``'s :data:`PRETRAIN_META`, if any."""
    meta = osp.join(folder, PRETRAIN_META)
    if not osp.isfile(meta):
        return {}
    try:
        with open(meta, encoding='utf-8') as f:
            recorded = json.load(f).get('sha256', {})
        return {str(k): str(v) for k, v in recorded.items()}
    except (OSError, ValueError, AttributeError) as e:
        raise CheckpointError(
            f'{shown}: {meta} cannot be read ({type(e).__name__}: {e}). '
            'Fix: copy or export the folder again.') from e


def _check_recorded(folder: str, rel: str, digest: str, shown: str) -> None:
    path = osp.join(folder, *rel.split('/'))
    found = sha256_file(path) if osp.isfile(path) else None
    if found != digest:
        state = ('is missing' if found is None else
                 f'hashes to {found[:12]}..., not the {digest[:12]}... '
                 'recorded')
        raise CheckpointError(
            f'{shown}: {rel} {state} in {osp.join(folder, PRETRAIN_META)} '
            'at export: the file changed after the export (a damaged or '
            'partial copy, a flipped byte). Fix: copy or export the folder '
            'again.')


def check_exported_file(path: str, shown: str) -> None:
    """Verify a weight file of an exported folder (``<folder>/unet/x``,
    e.g. as ``unet_weights=``) against the sha256 its export recorded; a
    file of no export passes."""
    path = osp.abspath(path)
    folder = osp.dirname(osp.dirname(path))
    rel = osp.relpath(path, folder).replace(os.sep, '/')
    digest = _recorded_hashes(folder, shown).get(rel)
    if digest is not None:
        _check_recorded(folder, rel, digest, shown)


def verify_weights_folder(folder: str, subfolders: Iterable[str],
                          shown: str) -> None:
    """Check a diffusers folder before diffusers reads it.

    Every weight file diffusers would read from ``subfolders`` gets the
    checks of :func:`read_checkpoint` (truncated, corrupted, unsafe
    pickle); then the files of ``subfolders`` listed in the ``sha256`` entry
    of :data:`PRETRAIN_META` (written by mmdiff's export) must hash as
    recorded.

    Raises:
        FileNotFoundError | CheckpointError | UnsafeCheckpointError: Naming
            the file, the problem and the fix.
    """
    subfolders = tuple(subfolders)
    for sub in subfolders:
        files = weight_files(osp.join(folder, sub))
        if not files:
            raise FileNotFoundError(
                f'{shown}: {sub}/ holds no weights (diffusion_pytorch_model'
                '.safetensors or .bin). Fix: copy or export the folder '
                'again, or point pretrained= at a complete diffusers folder.')
        for path in files:
            verify_checkpoint(path, shown=f'{shown}: {sub}/'
                              f'{osp.basename(path)}')
    for rel, digest in sorted(_recorded_hashes(folder, shown).items()):
        if rel.split('/')[0] in subfolders:
            _check_recorded(folder, rel, digest, shown)
