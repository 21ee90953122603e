"""Convert a VPD / mmseg VPD / SD state dict into an mmdiff model state dict.

Pure dict-to-dict: no file I/O here (see :mod:`mmdiff.converters.io`).
Every source key is either placed (renamed, or converted to diffusers names
through diffusers' own helpers), dropped with a stated reason (DDPM schedule
buffers, VAE decoder, text encoder), or reported: a single
:class:`ConversionError` lists every key that could not be placed.
"""
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

from torch import Tensor

from .layouts import (SCHEDULE_BUFFERS, VAE_UNUSED, Layout, detect_layout,
                      unwrap_state_dict)
from .ldm import (ConversionError, convert_ldm, diffusers_configs,
                  load_original_config)

# Backbone prefix of the mmdiff model (host segmentor/detector attribute),
# and VPD's class embeddings (its ClassPrompts conditioner's).
BACKBONE = 'backbone.'
CONDITIONER = BACKBONE + 'conditioner.'
CLASS_EMBEDDINGS = CONDITIONER + 'class_embeddings'


@dataclass
class ConversionResult:
    """A converted state dict and what happened to every source key.

    Attributes:
        state_dict (OrderedDict): mmdiff model keys (``backbone.unet.*``
            diffusers names, ``backbone.vae.*``,
            ``backbone.conditioner.text_adapter.*``,
            ``backbone.conditioner.class_embeddings``, ``neck.*``,
            ``decode_head.*``).
        layout (Layout): The detected source layout.
        unet_cfg (dict): diffusers ``UNet2DConditionModel`` config.
        vae_cfg (dict): diffusers ``AutoencoderKL`` config.
        placed (dict): Destination group -> number of source keys placed.
        dropped (dict): Reason -> dropped source keys.
        placeholders (list): Output keys filled without a source value.
        notes (list): Other decisions (mean row, class embeddings source).
    """
    state_dict: 'OrderedDict[str, Tensor]'
    layout: Layout
    unet_cfg: dict
    vae_cfg: dict
    placed: Dict[str, int] = field(default_factory=dict)
    dropped: Dict[str, List[str]] = field(default_factory=dict)
    placeholders: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def num_classes(self) -> Optional[int]:
        emb = self.state_dict.get(CLASS_EMBEDDINGS)
        return None if emb is None else int(emb.shape[0])

    def meta(self) -> dict:
        """Plain-typed description for the checkpoint's ``meta``."""
        emb = self.state_dict.get(CLASS_EMBEDDINGS)
        return dict(
            layout=self.layout.name,
            task=self.layout.task,
            unet_cfg=self.unet_cfg,
            vae_cfg=self.vae_cfg,
            class_embeddings_shape=None if emb is None else list(emb.shape),
            placed=dict(self.placed),
            dropped={k: len(v) for k, v in self.dropped.items()},
            placeholders=list(self.placeholders),
            notes=list(self.notes))

    def summary(self) -> str:
        """Human-readable account of the conversion."""
        lines = [f'layout: {self.layout.name} - {self.layout.description}',
                 f'output: {len(self.state_dict)} tensors']
        lines += [f'  placed {n:5d} -> {g}' for g, n in self.placed.items()]
        lines += [f'  dropped {len(keys):4d}: {reason}'
                  for reason, keys in self.dropped.items()]
        if self.placeholders:
            lines.append(
                '  placeholders (never run by VPD): ' +
                ', '.join(self.placeholders))
        lines += [f'note: {n}' for n in self.notes + self.layout.notes]
        return '\n'.join(lines)


def _is_mean_row(emb: Tensor) -> bool:
    """Is the last row the mean of the others (mmseg's unknown-scene row)?"""
    if emb.ndim != 2 or emb.shape[0] < 3 or emb.is_meta:
        return False
    rows = emb.float()
    mean = rows[:-1].mean(0)
    tol = 1e-4 * max(float(rows.abs().max()), 1e-12)
    return bool((rows[-1] - mean).abs().max() <= tol)


def _group(dst: str) -> str:
    parts = dst.split('.')
    if dst.startswith(CONDITIONER):
        return '.'.join(parts[:3])
    return '.'.join(parts[:2]) if parts[0] == 'backbone' else parts[0]


def convert_state_dict(checkpoint: dict,
                       original_config: Union[None, str, dict] = None,
                       class_embeddings: Optional[Tensor] = None
                       ) -> ConversionResult:
    """Convert a VPD / mmseg VPD / SD checkpoint to the mmdiff layout.

    Args:
        checkpoint (dict): A loaded checkpoint (``state_dict``/``model``
            wrappers and a DDP ``module.`` prefix are undone) or a flat
            state dict.
        original_config (str | dict, optional): The ldm yaml (path or dict)
            of the U-Net/VAE. Defaults to None: SD v1.x inference config.
        class_embeddings (Tensor, optional): ``(K, D)`` embeddings to use
            instead of (or, when the source has none, in place of) the
            source's. Defaults to None.

    Returns:
        ConversionResult: The state dict and an account of every key.

    Raises:
        ValueError: Unknown layout.
        ConversionError: Keys that cannot be placed (all listed).
    """
    state, where = unwrap_state_dict(checkpoint)
    layout = detect_layout(state)
    ldm_config = load_original_config(original_config)
    unet_cfg, vae_cfg = diffusers_configs(ldm_config)

    ldm_parts: Dict[str, Dict[str, Tensor]] = dict(unet={}, vae={})
    origins = dict(unet='', vae='')
    out: Dict[str, Tensor] = OrderedDict()
    placed: Dict[str, int] = OrderedDict()
    dropped: Dict[str, List[str]] = OrderedDict()
    unplaced: List[str] = []
    source_emb = None
    notes = [f'state dict read from the {where}']

    def drop(reason: str, key: str) -> None:
        dropped.setdefault(reason, []).append(key)

    for key, value in state.items():
        routed = layout.route(key)
        if routed is None:
            unplaced.append(key)
            continue
        rule, rest = routed
        if rule.dst in ('unet', 'vae'):
            if rule.dst == 'vae':
                unused = next((r for p, r in VAE_UNUSED
                               if rest.startswith(p)), None)
                if unused:
                    drop(unused, key)
                    continue
            ldm_parts[rule.dst][rest] = value
            origins[rule.dst] = rule.src
        elif rule.dst == 'schedule':
            if rest in SCHEDULE_BUFFERS or key in SCHEDULE_BUFFERS:
                drop('DDPM schedule buffers (not weights)', key)
            else:
                unplaced.append(key)
        elif rule.dst == 'drop':
            drop(rule.reason, key)
        elif rule.dst == 'class_embeddings':
            source_emb = value
        else:
            dst = rule.dst + rest
            if dst in out:
                unplaced.append(key)  # two sources for one destination
                continue
            out[dst] = value
            placed[_group(dst)] = placed.get(_group(dst), 0) + 1

    if unplaced:
        raise ConversionError(
            f'{len(unplaced)} keys of this {layout.name} checkpoint '
            f'({layout.description}) cannot be placed in the mmdiff model:\n'
            + '\n'.join(f'  {k}' for k in unplaced), unplaced)
    if not ldm_parts['vae']:
        raise ConversionError(
            f'This {layout.name} checkpoint has a U-Net but no VAE encoder '
            'weights; mmdiff needs both.', [])

    placeholders = []
    backbone_state = OrderedDict()
    for kind in ('unet', 'vae'):
        converted, filled = convert_ldm(kind, ldm_parts[kind],
                                        unet_cfg if kind == 'unet' else
                                        vae_cfg, origins[kind])
        for name, value in converted.items():
            backbone_state[f'{BACKBONE}{kind}.{name}'] = value
        placed[f'{BACKBONE}{kind}'] = len(ldm_parts[kind])
        placeholders += [f'{BACKBONE}{kind}.{n}' for n in filled]
    if placeholders:
        notes.append('the source has no ldm U-Net `out` (VPD depth deletes '
                     'it): conv_norm_out/conv_out are placeholders, unused '
                     'because VPD stops at its last tap')

    emb = source_emb
    if class_embeddings is not None:
        notes.append('class embeddings: taken from the given file' +
                     (' (replacing the checkpoint\'s)'
                      if source_emb is not None else ''))
        emb = class_embeddings
    elif emb is not None and layout.name == 'mmseg_vpd' and \
            _is_mean_row(emb):
        notes.append(
            f'class embeddings: mmseg\'s last row (of {emb.shape[0]}) is the '
            'mean of the others and was dropped; mmdiff.VPD(class_embed_'
            'select=True) appends it at run time')
        emb = emb[:-1]
    if emb is not None:
        backbone_state[CLASS_EMBEDDINGS] = emb
        placed[CLASS_EMBEDDINGS] = 1
    if any(k.startswith(CONDITIONER + 'text_adapter.') for k in out) and \
            emb is None:
        notes.append('no class embeddings in the source: pass '
                     '--class-embeddings FILE, or load non-strictly')

    state_dict = OrderedDict(backbone_state)
    state_dict.update(out)
    return ConversionResult(
        state_dict=state_dict, layout=layout, unet_cfg=unet_cfg,
        vae_cfg=vae_cfg, placed=dict(placed), dropped=dict(dropped),
        placeholders=placeholders, notes=notes)
