"""Checks that turn bad input into one clear error naming the fix.

Called by ``tools/train.py`` and ``tools/test.py`` right after the Runner is
built (:func:`check_before_run`), before any weights are loaded or any step
is taken, and by the backbone on its inputs (:func:`check_image_size`).

Covered here:

* the neck (or head) ``in_channels`` disagree with the backbone's
  ``out_channels`` (``mmdiff.models.backbones.check_in_channels``), and the
  number K of class embeddings disagrees with the head's ``num_classes``;
* a checkpoint to load (``load_from``, ``--resume``, ``tools/test.py``) that
  is missing, truncated/corrupted, or made for a different U-Net shape (the
  mismatched keys are listed: mmengine would only warn and go on with
  randomly initialised layers);
* images smaller than the U-Net's minimum (the backbone calls
  :func:`check_image_size`).

Elsewhere: wrong image channels and a wrong embedding width D are refused
by the backbone itself; NaN inputs/losses by ``mmdiff.NaNGuardHook``.
"""
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

# parameters that must match a checkpoint even when fine-tuning (load_from)
_DIFFUSION_PREFIXES = ('backbone.unet.', 'backbone.vae.')


def _unwrap(model):
    return getattr(model, 'module', model)


def _backbone(model: nn.Module):
    from mmdiff.models.backbones import DiffusionBackbone
    backbone = getattr(model, 'backbone', None)
    return backbone if isinstance(backbone, DiffusionBackbone) else None


def check_image_size(backbone, inputs: Tensor,
                     minimum: Optional[int] = None) -> None:
    """Refuse images smaller than the backbone can see.

    The backbone pads images up to a multiple of ``size_divisor`` (64 for
    SD), so any size runs; but below the VAE factor (8 for SD) the U-Net
    gets less than one latent pixel of image, all else is padding.

    Args:
        backbone: A :class:`~mmdiff.models.backbones.DiffusionBackbone`.
        inputs (Tensor): ``(B, C, H, W)`` images.
        minimum (int, optional): Smallest height/width accepted. Defaults
            to None: the VAE factor. Pass ``backbone.size_divisor`` to also
            refuse images padded at the U-Net's coarsest level.

    Raises:
        ValueError: Naming the minimum size and the fix.
    """
    if minimum is None:
        minimum = backbone.vae_factor
    pad = getattr(backbone, 'pad_shape', None) or (0, 0)
    height, width = inputs.shape[-2:]
    if max(height, pad[0]) >= minimum and max(width, pad[1]) >= minimum:
        return
    raise ValueError(
        f'Image of {height}x{width} pixels is smaller than the U-Net\'s '
        f'minimum {minimum}x{minimum}: the VAE downsamples by '
        f'{backbone.vae_factor}, so the U-Net would see less than one latent '
        'pixel of image (images are padded to multiples of '
        f'{backbone.size_divisor}). Fix: resize in the pipeline (e.g. '
        "dict(type='Resize', scale=(512, 512))) or check that the inputs are "
        '(B, 3, H, W) images, not crops or feature maps.')


def _head_num_classes(model: nn.Module) -> Optional[Tuple[str, int]]:
    """``(name, num_classes)`` of the head that scores classes."""
    candidates = [('decode_head', getattr(model, 'decode_head', None)),
                  ('bbox_head', getattr(model, 'bbox_head', None))]
    roi = getattr(model, 'roi_head', None)
    if roi is not None:
        head = getattr(roi, 'bbox_head', None)
        if isinstance(head, nn.ModuleList):
            head = head[-1]
        candidates.append(('roi_head.bbox_head', head))
    for name, head in candidates:
        num = getattr(head, 'num_classes', None)
        if isinstance(num, int):
            return name, num
    return None


def check_class_embeddings(model: nn.Module) -> None:
    """Refuse K class embeddings for a head scoring another number of classes.

    Skipped for ``class_embed_select`` (depth: one scene prompt per image)
    and for backbones without class embeddings.

    Raises:
        ValueError: Naming both numbers and the fix.
    """
    backbone = _backbone(model)
    emb = getattr(backbone, 'class_embeddings', None)
    if emb is None or getattr(backbone, 'class_embed_select', False):
        return
    found = _head_num_classes(model)
    if found is None or found[1] == emb.shape[0]:
        return
    name, num = found
    raise ValueError(
        f'The backbone has K={emb.shape[0]} class embeddings (one prompt '
        f'per class) but {name}.num_classes={num}. Fix: build embeddings '
        'for the data set\'s classes (tools/misc/build_class_embeddings.py '
        'or class_embeddings=dict(class_names=...)) or set '
        f'num_classes={emb.shape[0]}, and the neck in_channels to match.')


def check_normalization(model: nn.Module) -> None:
    """Refuse a data preprocessor whose ``std`` holds 0 or NaN/inf.

    Raises:
        ValueError: Naming the values and the fix.
    """
    pre = getattr(model, 'data_preprocessor', None)
    std = getattr(pre, 'std', None)
    enabled = getattr(pre, '_enable_normalize', True)
    if not isinstance(std, Tensor) or not enabled:
        return
    if (std == 0).any() or not torch.isfinite(std).all():
        raise ValueError(
            f'data_preprocessor std={std.flatten().tolist()} holds 0 or '
            'NaN/inf: normalised images would be NaN/inf. Fix: std='
            '[127.5, 127.5, 127.5] with mean=[127.5] * 3 (images to [-1, 1],'
            ' as the VAE expects).')


def check_model(model: nn.Module) -> None:
    """All config-consistency checks of a built host model."""
    from mmdiff.models.backbones import check_in_channels
    model = _unwrap(model)
    if not isinstance(model, nn.Module) or _backbone(model) is None:
        return
    check_normalization(model)
    check_class_embeddings(model)
    check_in_channels(model)


def _load_state(path: str) -> Dict[str, Tensor]:
    """The ``state_dict`` of a checkpoint file, or a clear error."""
    from .checkpoint_io import read_checkpoint
    ckpt = read_checkpoint(path, mmap=True)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise RuntimeError(
            f'Checkpoint {path!r} holds no state_dict. Fix: pass a '
            'checkpoint written by tools/train.py or a model converter.')
    return {k[len('module.'):] if k.startswith('module.') else k: v
            for k, v in state.items()}


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
    own = _unwrap(model).state_dict()
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
    from mmdiff.converters.layouts import detect_layout
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
    from .checkpoint_io import verify_checkpoint
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
        if str(path).startswith(('file://', 'http://', 'https://')):
            cfg.load_from = local  # the bytes checked here (zoo schemes:
            # mmengine's loader finds the same file in the hub cache)


def check_before_run(runner, mode: str = 'train') -> None:
    """Check a built Runner's model and the checkpoint it will load.

    Call right after ``Runner.from_cfg`` in an entry point. Models a
    FlexibleRunner has not built yet are not checked.

    Args:
        runner: An mmengine ``Runner``.
        mode (str): ``'train'``: a ``load_from`` checkpoint must match in
            the U-Net/VAE (fine-tuning may change heads), a resumed one
            everywhere. ``'test'``: everywhere. Defaults to 'train'.

    Also registers :class:`mmdiff.engine.InputGuardHook` (bad images,
    labels, depth maps, empty data sets) unless the config has one, and
    makes data-loading failures name their file
    (:func:`mmdiff.utils.data_checks.guard_dataloaders`).
    """
    model = getattr(runner, 'model', None)
    if isinstance(model, nn.Module):
        check_model(model)
    from mmdiff.engine.hooks.input_guard_hook import register_input_guard

    from .data_checks import guard_dataloaders
    register_input_guard(runner)
    guard_dataloaders(runner)
    path = getattr(runner, '_load_from', None)
    resume = getattr(runner, '_resume', False)
    if resume and path is None:
        from mmengine.runner import find_latest_checkpoint
        path = find_latest_checkpoint(runner.work_dir)
    if path is not None:
        from .checkpoint_io import resolve_checkpoint_path
        local = resolve_checkpoint_path(path)
        model = model if isinstance(model, nn.Module) else None
        check_checkpoint(local, model, strict=bool(resume) or mode == 'test')
        if str(path).startswith(('file://', 'http://', 'https://')) and \
                getattr(runner, '_load_from', None) == path:
            runner._load_from = local  # mmengine loads the bytes checked here
