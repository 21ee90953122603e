"""Checks of a built host model (mmseg segmentor / depth estimator, mmdet
detector) whose backbone is an mmdiff diffusion backbone.

A host config writes the neck's ``in_channels``, the head's
``num_classes`` and the data preprocessor by hand; with attention maps each
tapped resolution gains K channels (K = number of class embeddings), so a
new class-embedding file silently changes what the neck must accept.
:func:`check_model` turns each disagreement into one error naming the fix,
instead of a conv shape error deep in the first step. Strides are written
by hand too (anchor generators, RoI extractors, mmseg's FPN head): a stride
that disagrees with the level it reads trains without an error and gives
wrong boxes, so :func:`check_strides` refuses it.

The parts are found one way, :func:`host_part`, from the attribute paths
OpenMMLab hosts use (:data:`READER_PATHS`, :data:`CLASS_HEAD_PATHS`).
"""
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdiff.models.backbones import DiffusionBackbone, DiTBackbone

#: What reads the backbone's features: the neck, else a head reading them
#: directly (mmseg ``decode_head`` without a neck).
READER_PATHS = ('neck', 'decode_head')
#: The head that scores classes: mmseg, one-stage and two-stage mmdet.
CLASS_HEAD_PATHS = ('decode_head', 'bbox_head', 'roi_head.bbox_head')


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (``.module``), or itself."""
    return getattr(model, 'module', model)


def diffusion_backbone(model: nn.Module) -> Optional[DiffusionBackbone]:
    """``model.backbone`` when it is an mmdiff diffusion backbone (U-Net or
    transformer)."""
    backbone = getattr(unwrap(model), 'backbone', None)
    return backbone if isinstance(backbone, (DiffusionBackbone,
                                             DiTBackbone)) else None


def host_part(model: nn.Module, paths: Sequence[str],
              has: Callable[[nn.Module], bool]
              ) -> Optional[Tuple[str, nn.Module]]:
    """The first part of a host model at ``paths`` that satisfies ``has``.

    A container part (necks chained in an ``nn.Sequential``, a cascade's
    ``nn.ModuleList`` of bbox heads) stands for its first element: the one
    that reads the backbone; every stage of a cascade scores the same
    classes.

    Args:
        model (nn.Module): The host model.
        paths (Sequence[str]): Dotted attribute paths, in order of
            preference, e.g. :data:`READER_PATHS`.
        has (callable): Whether a found part is the one wanted.

    Returns:
        tuple[str, nn.Module] | None: The path and the part.
    """
    model = unwrap(model)
    for path in paths:
        part = model
        for name in path.split('.'):
            part = getattr(part, name, None)
        if isinstance(part, (nn.Sequential, nn.ModuleList)) and len(part):
            part = part[0]
        if part is not None and has(part):
            return path, part
    return None


def check_in_channels(model: nn.Module) -> None:
    """Raise if the neck (or decode head) disagrees with the backbone.

    Args:
        model (nn.Module): A built mmseg segmentor / depth estimator or mmdet
            detector whose ``backbone`` is a :class:`DiffusionBackbone`.

    Raises:
        ValueError: Naming the channels to write in the config.
    """
    backbone = diffusion_backbone(model)
    found = host_part(model, READER_PATHS,
                      lambda part: hasattr(part, 'in_channels'))
    if backbone is None or found is None:
        return
    name, reader = found
    in_channels = reader.in_channels
    in_index = getattr(reader, 'in_index', None) if name != 'neck' else None
    provided: List[int] = list(backbone.out_channels)
    if in_index is not None:
        index = [in_index] if isinstance(in_index, int) else list(in_index)
        provided = [provided[i] for i in index]
    expected = [in_channels] if isinstance(in_channels, int) else list(
        in_channels)
    if len(provided) == 1 and len(expected) > 1:
        return  # heads that resize/concat inputs handle this themselves
    if expected == provided:
        return
    attn = ''
    if backbone.use_attn:
        strides = [backbone.vae_factor * d for d in backbone.attn_downsamples]
        attn = (f' With use_attn=True each tap at a resolution with '
                f'cross-attention maps (strides {strides}) gains '
                f'K={backbone.num_tokens} channels, K being the number of '
                'class embeddings.')
    raise ValueError(
        f'{name}.in_channels={expected} but the backbone '
        f'{type(backbone).__name__} outputs {provided} channels '
        f'(features {backbone.tap_channels}).{attn} Fix: set '
        f'{name}.in_channels={provided} in the config (or use '
        'class embeddings with the K the config was written for).')


def check_class_embeddings(model: nn.Module) -> None:
    """Refuse K class embeddings for a head scoring another number of classes.

    Skipped for ``class_embed_select`` (depth: one scene prompt per image)
    and for backbones without class embeddings.

    Raises:
        ValueError: Naming both numbers and the fix.
    """
    backbone = diffusion_backbone(model)
    conditioner = getattr(backbone, 'conditioner', None)
    emb = getattr(conditioner, 'class_embeddings', None)
    if emb is None or getattr(backbone, 'class_embed_select', False):
        return
    found = host_part(
        model, CLASS_HEAD_PATHS,
        lambda part: isinstance(getattr(part, 'num_classes', None), int))
    if found is None or found[1].num_classes == emb.shape[0]:
        return
    name, num = found[0], found[1].num_classes
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
    pre = getattr(unwrap(model), 'data_preprocessor', None)
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


#: Parts that read levels by stride: ``(path, attribute)``; the attribute
#: holds one stride (or an ``(sw, sh)`` pair) per level, finest first.
STRIDE_READERS = (
    ('rpn_head.prior_generator', 'strides'),
    ('bbox_head.prior_generator', 'strides'),
    ('roi_head.bbox_roi_extractor', 'featmap_strides'),
    ('roi_head.mask_roi_extractor', 'featmap_strides'),
)
# Not listed: Mask2Former's pixel decoder (MSDeformAttnPixelDecoder) scales
# its reference points by its strides and divides them out again, so its
# ``strides`` do not change what it computes.


def level_strides(model: nn.Module) -> Optional[List[int]]:
    """Strides of the levels the heads read: an FPN-like neck's outputs
    (its ``start_level``..``backbone_end_level`` inputs, then one extra level
    of twice the stride per further output), or the backbone's own levels
    without a neck; None for a neck of another kind."""
    backbone = diffusion_backbone(model)
    strides = [info['reduction'] for info in backbone.feature_info]
    neck = getattr(unwrap(model), 'neck', None)
    if neck is None:
        return strides
    if hasattr(neck, 'out_strides'):  # mmdiff.SimpleFeaturePyramid
        return neck.out_strides(strides)
    try:
        start, end = neck.start_level, neck.backbone_end_level
        num_outs = neck.num_outs
    except AttributeError:
        return None
    outs = strides[start:end]
    while outs and len(outs) < num_outs:
        outs.append(outs[-1] * 2)
    return outs


def _stride_readers(root: nn.Module, levels: List[int]):
    """``(name, strides written, strides of the levels read)`` of every part
    of :data:`STRIDE_READERS` (and mmseg's ``FPNHead``) in ``root``."""
    for path, attr in STRIDE_READERS:
        part = root
        for name in path.split('.'):
            part = getattr(part, name, None)
        for item in (part if isinstance(part, nn.ModuleList) else [part]):
            if getattr(item, attr, None) is not None:
                yield f'{path}.{attr}', getattr(item, attr), levels
    head = getattr(root, 'decode_head', None)
    if getattr(head, 'feature_strides', None) is not None:
        index = head.in_index if isinstance(head.in_index, (list, tuple)) \
            else [head.in_index]
        yield ('decode_head.feature_strides', head.feature_strides,
               [levels[i] for i in index if i < len(levels)])


def check_strides(model: nn.Module) -> None:
    """Raise if a head reads a level at another stride than it has.

    The strides a config writes for anchor generators, RoI extractors and
    mmseg's ``FPNHead`` (their ratios) must be those of the levels they read
    (:func:`level_strides`): e.g. with ``vae_taps`` the backbone's first
    level has stride 4, not 8.

    Raises:
        ValueError: Naming the part, both stride lists and the fix.
    """
    backbone = diffusion_backbone(model)
    levels = level_strides(model) if backbone is not None else None
    if not levels:
        return
    for name, written, read in _stride_readers(unwrap(model), levels):
        found = [int(s[0]) if isinstance(s, (tuple, list)) else int(s)
                 for s in written]
        want = read[:len(found)]
        if name == 'decode_head.feature_strides' and len(want) == len(found):
            # FPNHead reads only their ratios (upsampling steps per level)
            want = [w * found[0] // want[0] for w in want]
        if found != want:
            raise ValueError(
                f'{name}={found} but the levels it reads have strides '
                f'{want} (the backbone\'s levels: '
                f'{[i["reduction"] for i in backbone.feature_info]}; the '
                f'levels after the neck: {levels}). Fix: write those '
                'strides in the config (with vae_taps the first levels come '
                'from the VAE encoder, e.g. stride 4).')


def check_model(model: nn.Module) -> None:
    """All config-consistency checks of a built host model; models without
    an mmdiff diffusion backbone are not checked."""
    if not isinstance(model, nn.Module) or diffusion_backbone(model) is None:
        return
    check_normalization(model)
    check_class_embeddings(model)
    check_in_channels(model)
    check_strides(model)
