"""Meta Prompts source checkpoints (fudan-zvg/meta-prompts@5628dd9) to the
:class:`MetaPromptsBackbone` layout: pure dict-to-dict, on mmdiff's
converter (:func:`mmdiff.converters.convert_state_dict` with the layouts
below; ldm U-Net/VAE keys renamed by diffusers' helpers).

* segmentation (``MetaPromptsSeg``, an mmseg 0.x checkpoint):
  ``unet.unet.diffusion_model.*``, ``encoder_vq.*``, ``meta_prompts``,
  ``t{k}``, ``cross_unet_conv{k}.*`` (the U-Net's ``out``, shared),
  ``upconv{i}.*``, ``decode_head.*``, ``auxiliary_head.*``, ``sd_model.*``
  schedule buffers;
* depth (``MetaPromptDepth``, ``{'model': ...}``): under ``encoder.`` the
  same U-Net/VAE (``time_embed`` deleted), ``meta_prompts{k}``,
  ``text_adapter{k}.fc.*``, ``t{k}``, ``cross_unet_conv{k}.*``,
  ``layer1..4``, ``out_layer``; ``decoder.*``, ``last_layer_depth.*``.
"""
import re
from typing import Union

import torch

from mmdiff.converters import (ConversionError, ConversionResult, Layout,
                               convert_state_dict, unwrap_state_dict)
from mmdiff.converters.layouts import Rule
from mmdiff.converters.ldm import load_original_config

SHARED_OUT = ("the U-Net's own `out` (the same tensors as "
              "unet.unet.diffusion_model.out.*)")
NO_TIME_EMBED = ('placeholder ldm time_embed for the conversion (the depth '
                 'source deleted it; MetaPromptsBackbone(delete_time_embed='
                 'True) has none)')


def _steps(state: dict, prefix: str) -> int:
    steps = [int(m.group(1)) for k in state
             for m in [re.fullmatch(re.escape(prefix) + r't(\d+)', k)] if m]
    if sorted(steps) != list(range(1, len(steps) + 1)):
        raise ConversionError(
            f'Expected timestep parameters {prefix}t1..{prefix}tN, got '
            f'{sorted(steps)}.', [])
    return len(steps)


def meta_prompts_layout(state: dict) -> Layout:
    """The source layout of a flat state dict (segmentation or depth)."""
    if 'meta_prompts' in state and 't1' in state:
        task, pre = 'seg', ''
    elif 'encoder.t1' in state and 'encoder.meta_prompts1' in state:
        task, pre = 'depth', 'encoder.'
    else:
        raise ValueError(
            'Not a Meta Prompts checkpoint: expected meta_prompts + t1 '
            '(segmentation, MetaPromptsSeg) or encoder.meta_prompts1 + '
            'encoder.t1 (depth, MetaPromptDepth). For VPD checkpoints use '
            'tools/model_converters/vpd_to_mmdiff.py.')
    steps = _steps(state, pre)
    rules = [Rule(f'{pre}unet.unet.diffusion_model.', 'unet'),
             Rule(f'{pre}encoder_vq.', 'vae')]
    for k in range(1, steps + 1):
        rules += [Rule(f'{pre}t{k}', f'backbone.timesteps.{k - 1}'),
                  Rule(f'{pre}cross_unet_conv{k}.', 'drop', SHARED_OUT)]
    if task == 'seg':
        rules += [Rule('meta_prompts', 'backbone.prompts.0')]
        rules += [Rule(f'upconv{i}.', f'backbone.prompt_head.upconvs.'
                       f'{i - 1}.') for i in range(1, 5)]
        rules += [Rule('decode_head.', 'decode_head.'),
                  Rule('auxiliary_head.', 'auxiliary_head.'),
                  Rule('sd_model.', 'schedule')]
    else:
        for k in range(1, steps + 1):
            rules += [
                Rule(f'{pre}meta_prompts{k}', f'backbone.prompts.{k - 1}'),
                Rule(f'{pre}text_adapter{k}.', f'backbone.adapters.{k - 1}.')]
        rules += [Rule(f'{pre}{n}.', f'backbone.prompt_head.{n}.')
                  for n in ('layer1', 'layer2', 'layer3', 'layer4',
                            'out_layer')]
        rules += [Rule('decoder.', 'decode_head.decoder.'),
                  Rule('last_layer_depth.', 'decode_head.depth_pred_layer.')]
    return Layout(
        name=f'meta_prompts_{task}',
        description=f'Meta Prompts {task} (fudan-zvg/meta-prompts), '
        f'{steps} refinement steps',
        signature=f'{pre}t1', rules=tuple(rules), task=task)


def _check_shared_out(state: dict, pre: str) -> None:
    """``cross_unet_conv{k}`` must be the U-Net's ``out`` (shared)."""
    out = f'{pre}unet.unet.diffusion_model.out.'
    for key, value in state.items():
        m = re.fullmatch(re.escape(pre) + r'cross_unet_conv\d+\.(.*)', key)
        if m is None:
            continue
        ref = state.get(out + m.group(1))
        if ref is None or ref.shape != value.shape or not (
                value.is_meta or torch.equal(ref, value)):
            raise ConversionError(
                f'{key} differs from {out}{m.group(1)}: the source shares '
                'one `out` between the U-Net and the refinement steps.',
                [key])


def convert_meta_prompts(checkpoint: dict,
                         original_config: Union[None, str, dict] = None
                         ) -> ConversionResult:
    """Convert a Meta Prompts checkpoint to the mmdiff layout.

    Args:
        checkpoint (dict): The loaded source checkpoint.
        original_config (str | dict, optional): ldm yaml of the U-Net/VAE.
            Defaults to None (SD v1 inference).

    Returns:
        ConversionResult: ``backbone.*`` (MetaPromptsBackbone),
        ``decode_head.*``/``auxiliary_head.*`` keys and an account of every
        source key.
    """
    state, where = unwrap_state_dict(checkpoint)
    layout = meta_prompts_layout(state)
    pre = 'encoder.' if layout.task == 'depth' else ''
    _check_shared_out(state, pre)
    ldm = f'{pre}unet.unet.diffusion_model.'
    placeholders = []
    if layout.task == 'depth' and ldm + 'time_embed.0.weight' not in state:
        # diffusers' converter needs ldm's time_embed: zeros, dropped after
        params = load_original_config(original_config)['model']['params']
        mc = (params.get('unet_config') or
              params['network_config'])['params']['model_channels']
        state = dict(state)
        for name, shape in (('0.weight', (4 * mc, mc)), ('0.bias', (4 * mc, )),
                            ('2.weight', (4 * mc, 4 * mc)),
                            ('2.bias', (4 * mc, ))):
            state[f'{ldm}time_embed.{name}'] = torch.zeros(shape)
            placeholders.append(f'{ldm}time_embed.{name}')
    result = convert_state_dict(state, original_config, layout=layout)
    if placeholders:
        for key in [k for k in result.state_dict
                    if k.startswith('backbone.unet.time_embedding.')]:
            del result.state_dict[key]
        result.dropped[NO_TIME_EMBED] = placeholders
        result.placed['backbone.unet'] -= len(placeholders)
    result.notes[0] = f'state dict read from the {where}'
    return result
