"""Reading source checkpoints and writing mmengine checkpoints atomically.

The writing and hashing live in :mod:`mmdiff.utils.fileio` (one copy for
every writer); ``atomic_write`` and ``sha256_file`` are re-exported here,
where the converters always found them.
"""
from mmdiff.utils.fileio import atomic_write, sha256_file, torch_save

__all__ = ['load_source', 'atomic_write', 'sha256_file', 'save_checkpoint']


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


def save_checkpoint(checkpoint: dict, path: str) -> str:
    """``torch.save`` a checkpoint atomically."""
    return atomic_write(path, lambda tmp: torch_save(checkpoint, tmp))
