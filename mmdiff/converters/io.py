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
        trust_pickle (bool): When the file holds objects outside the
            weights-only allow-list, unpickle it fully after a loud warning
            (runs code from the file: only for sources you trust). Never
            applied to truncated or corrupted files. Defaults to False.

    Returns:
        dict: The loaded object (tensors on CPU).
    """
    from mmdiff.utils.checkpoint_io import read_checkpoint
    return read_checkpoint(path, trust_pickle=trust_pickle)


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
    from mmdiff.utils.checkpoint_io import explain_write_errors
    try:
        with explain_write_errors(path, f'writing {path}'):
            write(tmp)
            os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return path


def save_checkpoint(checkpoint: dict, path: str) -> str:
    """``torch.save`` a checkpoint atomically."""
    return atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
