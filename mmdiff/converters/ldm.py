"""ldm-layout (CompVis / Stability-AI) U-Net / VAE weights to diffusers names.

The renaming itself is diffusers' own (``convert_ldm_unet_checkpoint``,
``convert_ldm_vae_checkpoint``, configs from
``create_{unet,vae}_diffusers_config_from_ldm``). Around it this module
adds what a converter that must not lose weights needs: it records which
source tensors reached the output (by storage, since diffusers reshapes some
VAE attention weights into views), and checks names and shapes against the
diffusers models built from the same config on the ``meta`` device.
"""
import copy
import os.path as osp
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

# Stable Diffusion v1.x ``configs/stable-diffusion/v1-inference.yaml`` (the
# config VPD and mmsegmentation build their ldm model from), the parts that
# diffusers' config helpers read.
SD_V1_INFERENCE = dict(model=dict(params=dict(
    scale_factor=0.18215,
    unet_config=dict(
        target='ldm.modules.diffusionmodules.openaimodel.UNetModel',
        params=dict(
            image_size=32, in_channels=4, out_channels=4, model_channels=320,
            attention_resolutions=[4, 2, 1], num_res_blocks=2,
            channel_mult=[1, 2, 4, 4], num_heads=8,
            use_spatial_transformer=True, transformer_depth=1,
            context_dim=768, use_checkpoint=True, legacy=False)),
    first_stage_config=dict(
        target='ldm.models.autoencoder.AutoencoderKL',
        params=dict(embed_dim=4, ddconfig=dict(
            double_z=True, z_channels=4, resolution=256, in_channels=3,
            out_ch=3, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2,
            attn_resolutions=[], dropout=0.0))))))

# U-Net parameters diffusers needs but VPD never runs (the output head after
# the last tap). VPD's depth model deletes ldm's ``out``; the converter then
# fills these with an identity norm and a zero conv so the result still loads
# strictly.
UNET_HEAD = ('conv_norm_out.weight', 'conv_norm_out.bias', 'conv_out.weight',
             'conv_out.bias')
VAE_BUILT_WITHOUT = ('decoder.', 'post_quant_conv.')


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; ``keys`` lists the culprits."""

    def __init__(self, message: str, keys: Optional[List[str]] = None):
        super().__init__(message)
        self.keys = list(keys or [])


def load_original_config(config: Union[None, str, dict]) -> dict:
    """The ldm config: a yaml path, a dict, or None for SD v1 inference."""
    if config is None:
        return copy.deepcopy(SD_V1_INFERENCE)
    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(
                f'--original-config {config!r} does not exist: pass the ldm '
                'yaml the checkpoint was trained with (e.g. v1-inference.'
                'yaml, v2-inference.yaml).')
        import yaml
        with open(config, encoding='utf-8') as f:
            config = yaml.safe_load(f)
    try:
        params = config['model']['params']
        params['first_stage_config']['params']['ddconfig']
        params.get('unet_config') or params['network_config']
    except (KeyError, TypeError) as e:
        raise ValueError(
            'The ldm config needs model.params.unet_config (or '
            'network_config) and model.params.first_stage_config.params.'
            f'ddconfig; missing {e}.') from e
    return config


def diffusers_configs(original_config: dict) -> Tuple[dict, dict]:
    """``UNet2DConditionModel`` and ``AutoencoderKL`` configs of an ldm model.
    """
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm)

    # an empty checkpoint only sets sample_size (to SD v1's), which does not
    # change any weight
    unet = create_unet_diffusers_config_from_ldm(original_config, {})
    vae = create_vae_diffusers_config_from_ldm(original_config, {})
    return _plain(unet), _plain(vae)


def _plain(config: dict) -> dict:
    """Lists instead of tuples etc., so the config pickles weights-only."""
    out = {}
    for key, value in config.items():
        if isinstance(value, tuple):
            value = list(value)
        if isinstance(value, Tensor):
            value = value.tolist()
        out[key] = value
    return out


def _storage_key(tensor: Tensor) -> tuple:
    """Identity of a tensor's data, shared by the views diffusers makes.

    Uses the root tensor of a view (``_base``) and the offset into it, so it
    also works on ``meta`` tensors (which have no data pointer).
    """
    root = tensor._base if tensor._base is not None else tensor
    return (id(root), tensor.storage_offset(), tensor.dtype)


def _expected(kind: str, config: dict) -> Dict[str, torch.Size]:
    """Names and shapes of the diffusers model, built on ``meta``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging as dlogging
    cls = UNet2DConditionModel if kind == 'unet' else AutoencoderKL
    verbosity = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        with torch.device('meta'):
            model = cls.from_config(config)
    finally:
        dlogging.set_verbosity(verbosity)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    if kind == 'vae':
        shapes = {k: s for k, s in shapes.items()
                  if not k.startswith(VAE_BUILT_WITHOUT)}
    return shapes


def convert_ldm(kind: str, state: Dict[str, Tensor], config: dict,
                origin: str) -> Tuple[Dict[str, Tensor], List[str]]:
    """Convert ldm U-Net or VAE weights (keys without prefix) to diffusers.

    Args:
        kind (str): ``'unet'`` or ``'vae'``.
        state (dict[str, Tensor]): ldm keys relative to the module (e.g.
            ``input_blocks.0.0.weight`` / ``encoder.conv_in.weight``).
        config (dict): The diffusers config of the module.
        origin (str): Source prefix, for messages.

    Returns:
        tuple[dict, list[str]]: Diffusers-named weights, and the U-Net head
        keys filled with placeholders (empty unless the source lacks ldm's
        ``out``).

    Raises:
        ConversionError: Source keys diffusers did not place, or names or
            shapes that do not match the model built from ``config``.
    """
    from diffusers.loaders.single_file_utils import (
        LDM_UNET_KEY, convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint)
    if kind == 'unet':
        wrapped = {LDM_UNET_KEY + k: v for k, v in state.items()}
        converted = convert_ldm_unet_checkpoint(wrapped, config)
    else:
        converted = convert_ldm_vae_checkpoint(dict(state), config)
    converted = {k: v for k, v in converted.items() if v is not None}

    placed = {_storage_key(v) for v in converted.values()}
    unplaced = sorted(origin + k for k, v in state.items()
                      if _storage_key(v) not in placed)
    expected = _expected(kind, config)
    source_of = {_storage_key(v): origin + k for k, v in state.items()}
    misnamed = sorted(
        (source_of.get(_storage_key(v), '?'), k)
        for k, v in converted.items() if k not in expected)
    if unplaced or misnamed:
        lines = [f'  {k} (not converted)' for k in unplaced]
        lines += [f'  {src} (converted to {name!r}, which the diffusers '
                  f'{kind} does not have)' for src, name in misnamed]
        raise ConversionError(
            f'diffusers could not place {len(lines)} {kind} weights:\n' +
            '\n'.join(lines) + '\nIf the ldm config does not describe this '
            'checkpoint, pass --original-config <the ldm yaml it was trained '
            'with>.', unplaced + [src for src, _ in misnamed])
    placeholders = []
    if kind == 'unet' and not any(k in converted for k in UNET_HEAD):
        for name in UNET_HEAD:  # VPD depth deleted ldm's ``out``
            shape = expected[name]
            like = converted['conv_in.weight']
            value = torch.ones if name == 'conv_norm_out.weight' else \
                torch.zeros
            converted[name] = value(shape, dtype=like.dtype)
            placeholders.append(name)
    missing = sorted(k for k in expected if k not in converted)
    wrong = sorted(f'{k}: {tuple(converted[k].shape)} vs '
                   f'{tuple(expected[k])}' for k in expected
                   if k in converted and converted[k].shape != expected[k])
    if missing or wrong:
        raise ConversionError(
            f'The converted {kind} does not fit the diffusers {kind} built '
            f'from the ldm config: missing {missing}; wrong shapes {wrong}. '
            'Pass --original-config <the ldm yaml the checkpoint was trained '
            'with> (SD v1 inference is assumed by default).', missing + wrong)
    return converted, placeholders
