"""Reading source checkpoints and writing mmengine checkpoints atomically."""
import hashlib
import os
import os.path as osp
import tempfile
from typing import Callable

import torch


def load_source(path: str, trust_pickle: bool = False) -> dict:
    """Load a ``.safetensors`` file or a torch checkpoint, weights only.

    Args:
        path (str): The checkpoint.
        trust_pickle (bool): Fall back to a full unpickle (runs code from
            the file: only for sources you trust). Defaults to False.

    Returns:
        dict: The loaded object (tensors on CPU).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Source checkpoint {path!r} does not exist.')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    from mmdiff.utils.checkpoint import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # an object outside the weights-only allow-list
        if not trust_pickle:
            raise ValueError(
                f'{path} cannot be read weights-only ({type(e).__name__}: '
                f'{e}). If you trust its source, pass --trust-pickle.') from e
    return torch.load(path, map_location='cpu', weights_only=False)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Write through a temporary file in the same folder, then rename.

    ``write(tmp_path)`` produces the file; on any error the temporary file is
    removed and ``path`` is left as it was.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.tmp-',
                               suffix='-' + osp.basename(path))
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def save_checkpoint(checkpoint: dict, path: str) -> str:
    """``torch.save`` a checkpoint atomically."""
    return atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
