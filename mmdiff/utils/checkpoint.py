"""Weights-only loading of the checkpoints that mmengine itself writes.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``. mmengine
0.10.7 calls ``torch.load`` without the argument, so its own checkpoints, whose
``message_hub`` holds :class:`HistoryBuffer` objects with numpy arrays and
scalars (and whose meta may hold a ``ConfigDict``), fail to load on resume.

Instead of turning weights-only loading off, this allow-lists exactly those
types. Anything else (an arbitrary class, ``os.system``, ...) is still refused.
"""
import builtins
from typing import Any, Callable

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer

_REGISTERED = False


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` inside a weights-only unpickler.

    A pickled :class:`HistoryBuffer` stores its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``. Only that lookup is served; allowing
    the real ``getattr`` would hand any attribute of any allowed object to the
    unpickler.
    """
    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return builtins.getattr(obj, name)
    raise torch.serialization.pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) in a weights-only load: only '
        'the statistics methods of mmengine.logging.HistoryBuffer are '
        'allowed. Load the file with weights_only=False only if you trust '
        'its source.')


def _numpy_globals() -> list:
    """numpy's pickle entry points, under numpy 1.x and 2.x module names."""
    from numpy.core import multiarray  # noqa: F401  (numpy 1.x name)
    items = []
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        items += [(np.core.multiarray._reconstruct, f'{mod}._reconstruct'),
                  (np.core.multiarray.scalar, f'{mod}.scalar')]
    items += [np.ndarray, np.dtype, (np.ndarray, 'numpy.ndarray'),
              (np.dtype, 'numpy.dtype')]
    # numpy >= 1.25 pickles dtype instances through their DType classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [getattr(dtypes, name) for name in dir(dtypes)
                  if name.endswith('DType')]
    return items


def register_checkpoint_safe_globals() -> None:
    """Allow-list the types in mmengine checkpoints for weights-only loads.

    Idempotent. Called by ``tools/train.py``, ``tools/test.py`` and on
    ``import mmdiff`` so that ``--resume`` and ``load_checkpoint`` work on
    torch >= 2.6 while untrusted pickles are still refused.
    """
    global _REGISTERED
    if _REGISTERED or not hasattr(torch.serialization, 'add_safe_globals'):
        return
    import warnings
    with warnings.catch_warnings():  # np.core is a deprecated alias in 2.x
        warnings.simplefilter('ignore', DeprecationWarning)
        numpy_items = _numpy_globals()
    torch.serialization.add_safe_globals(numpy_items + [
        HistoryBuffer,
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        ConfigDict,
        (ConfigDict, 'mmengine.config.config.ConfigDict'),
        (_history_buffer_getattr, 'builtins.getattr'),
        (_history_buffer_getattr, '__builtin__.getattr'),
    ])
    _REGISTERED = True
