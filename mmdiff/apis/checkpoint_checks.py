"""Checks of a checkpoint before a host run loads it.

Called by ``tools/train.py`` and ``tools/test.py``: :func:`precheck_checkpoint`
before the model is built, :func:`check_checkpoint` (through
:func:`mmdiff.apis.check_before_run`) once it is. A checkpoint that is
missing, truncated/corrupted, or made for a different U-Net shape is refused
with the mismatched keys listed (mmengine would only warn and go on with
randomly initialised layers); one in a source's layout (VPD, mmseg VPD, SD)
is named with the command that converts it. Weights holding NaN/inf are
refused, naming the tensors (a NaN model still prints metrics).
"""
import os.path as osp
from typing import Dict, List, Optional

from torch import Tensor, nn

from mmdiff.converters.layouts import detect_layout
from mmdiff.utils.checkpoint_io import (check_finite, read_checkpoint,
                                        verify_checkpoint)
from .host_checks import unwrap

# parameters that must match a checkpoint even when fine-tuning (load_from)
_DIFFUSION_PREFIXES = ('backbone.unet.', 'backbone.vae.')


def _load_state(path: str) -> Dict[str, Tensor]:
    """The ``state_dict`` of a checkpoint file, or a clear error."""
    ckpt = read_checkpoint(path, mmap=True)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise RuntimeError(
            f'Checkpoint {path!r} holds no state_dict. Fix: pass a '
            'checkpoint written by tools/train.py or a model converter.')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    check_finite(state, f'Checkpoint {path!r}')
    return state


def check_checkpoint(path: str, model: Optional[nn.Module] = None,
                     strict: bool = True) -> None:
    """Refuse a missing, corrupted or mismatched checkpoint.

    Args:
        path (str): Checkpoint file or URL (checked through
            :func:`mmdiff.utils.checkpoint_io.read_checkpoint`).
        model (nn.Module, optional): Compare shapes with this model.
        strict (bool): Every parameter must match (resume, test); else only
            the U-Net and VAE (fine-tuning with ``load_from``, where the
            head and class embeddings may differ). Defaults to True.

    Raises:
        FileNotFoundError | RuntimeError: Naming the path and the fix.
    """
    state = _load_state(path)
    if model is None:
        return
    own = unwrap(model).state_dict()
    scope = None if strict else _DIFFUSION_PREFIXES

    def relevant(key):
        return scope is None or key.startswith(scope)

    lines: List[str] = []
    for key in sorted(set(own) & set(state)):
        if relevant(key) and tuple(own[key].shape) != tuple(state[key].shape):
            lines.append(f'{key}: checkpoint {tuple(state[key].shape)}, '
                         f'model {tuple(own[key].shape)}')
    missing = [k for k in sorted(set(own) - set(state)) if relevant(k)]
    unexpected = [k for k in sorted(set(state) - set(own)) if relevant(k)]
    if not (lines or missing or unexpected):
        return

    def show(keys, n=20):
        more = f' ... ({len(keys)} in all)' if len(keys) > n else ''
        return '\n  '.join(keys[:n]) + more
    parts = []
    if lines:
        parts.append(f'shape mismatch ({len(lines)}):\n  {show(lines)}')
    if missing:
        parts.append(f'missing in the checkpoint ({len(missing)}):\n  '
                     f'{show(missing)}')
    if unexpected:
        parts.append(f'not in the model ({len(unexpected)}):\n  '
                     f'{show(unexpected)}')
    raise RuntimeError(
        f'Checkpoint {path!r} was made for a different model than the '
        'config builds (e.g. another U-Net: unet_cfg / pretrained differ):\n'
        + '\n'.join(parts) + '\nFix: ' + (_source_layout_hint(path, state)
                                         or 'use the config the checkpoint '
                                         'was trained with, or a checkpoint '
                                         'of this architecture.'))


def _source_layout_hint(path: str, state: Dict[str, Tensor]) -> str:
    """How to use a checkpoint in a source's layout (VPD, mmseg VPD, SD),
    or '' when it is in none of them."""
    try:
        layout = detect_layout(state)
    except ValueError:  # mmdiff layout already, or unknown
        return ''
    if layout.name == 'sd':
        return (f'{path!r} is a Stable Diffusion checkpoint, not a trained '
                'model: give it to the backbone, --cfg-options '
                f'model.backbone.pretrained={path}')
    return (f'{path!r} is in the {layout.name} layout ({layout.description})'
            ': convert it first, python tools/model_converters/'
            f'vpd_to_mmdiff.py {path} converted.pth, and load converted.pth.')


def precheck_checkpoint(cfg) -> None:
    """Check the checkpoint a config will load before any model is built.

    Runs every check of :func:`mmdiff.utils.checkpoint_io.read_checkpoint`
    (CRC, sha256 of hash-named files, weights-only) on ``cfg.load_from``,
    or with ``cfg.resume`` and no path on the latest checkpoint of
    ``cfg.work_dir``; a URL is replaced by the local copy that was checked.
    """
    path = cfg.get('load_from', None)
    if path is None and cfg.get('resume', False):
        from mmengine.runner import find_latest_checkpoint
        work_dir = cfg.get('work_dir', None)
        path = find_latest_checkpoint(work_dir) if work_dir and \
            osp.isdir(work_dir) else None
        if path is None:
            return
        verify_checkpoint(path)
        return
    if path is not None:
        local = verify_checkpoint(path)
        if '://' in str(path):  # the bytes checked here, never a copy
            cfg.load_from = local  # mmengine keys by file name alone
