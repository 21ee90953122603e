"""Where diffusion-transformer and VAE weights come from.

The DiT counterpart of :mod:`.loading` (same split: architectures in
``__init__``, weights in ``init_weights()``), for a diffusers pipeline
folder or hub id with ``transformer/`` and ``vae/`` subfolders, or an
original single file (``from_single_file``, configs from
``original_config``: a diffusers folder or hub id of the same model).
"""
from typing import Optional, Tuple

from torch import nn

from mmdiff.utils.checkpoint_io import check_finite
from .dit import DiTFamily, get_family
from .loading import (check_pretrained, copy_weights, load_weights_file,
                      source_kind)
from .lora import lora_compatible_state_dict

SUBFOLDERS = ('transformer', 'vae')
VAE_IGNORE = ('decoder.', 'post_quant_conv.')


def _missing(pretrained: str, kind: str,
             cause: Optional[Exception] = None) -> str:
    why = 'no such folder or file' if cause is None else \
        f'{type(cause).__name__}: {str(cause).rstrip(".")}'
    return (
        f'mmdiff could not load diffusion-transformer weights from '
        f'pretrained={pretrained!r} ({kind}: a diffusers pipeline folder or '
        'hub id with transformer/ and vae/ subfolders, or a single file with '
        f'original_config naming such a folder). Cause: {why}. To fix: '
        '`hf download <repo> --include "transformer/*" "vae/*" '
        '--local-dir DIR` on a machine with network and set '
        'pretrained=DIR; or set pretrained=None with family, '
        'transformer_cfg and vae_cfg for a randomly initialised model.')


def _source_kind(pretrained: Optional[str]) -> str:
    """:func:`source_kind`, its not-found error in DiT terms."""
    try:
        return source_kind(pretrained)
    except FileNotFoundError:
        raise FileNotFoundError(_missing(pretrained, 'not found')) from None


def load_dit_configs(family: Optional[str], pretrained: Optional[str],
                     transformer_cfg: Optional[dict],
                     vae_cfg: Optional[dict],
                     original_config: Optional[str] = None,
                     local_files_only: bool = False
                     ) -> Tuple[DiTFamily, dict, dict]:
    """Resolve the family and the transformer and VAE architectures.

    Args:
        family (str, optional): ``'sd3'``, ``'flux'``, ``'pixart'`` or
            ``'sana'``; None
            reads it from the transformer config's ``_class_name``.
        pretrained (str, optional): Folder, hub id or single file; None
            builds from ``transformer_cfg``/``vae_cfg``.
        transformer_cfg (dict, optional): The transformer's config.
        vae_cfg (dict, optional): ``AutoencoderKL`` (Sana:
            ``AutoencoderDC``) config.
        original_config (str, optional): Folder or hub id whose configs
            describe a single-file ``pretrained``.
        local_files_only (bool): Never touch the network.

    Returns:
        tuple[DiTFamily, dict, dict]
    """
    kind = _source_kind(pretrained)
    if kind == 'none':
        if transformer_cfg is None or vae_cfg is None or family is None:
            raise ValueError(
                'pretrained=None needs family, transformer_cfg and vae_cfg '
                '(e.g. mmdiff.models.diffusion.tiny_dit_configs("sd3")); or '
                'set pretrained to a diffusers folder or hub id.')
        return get_family(family), dict(transformer_cfg), dict(vae_cfg)
    source = pretrained
    if kind == 'single_file':
        if original_config is None:
            raise ValueError(
                f'pretrained={pretrained!r} is a single file: set '
                'original_config to the diffusers folder or hub id of the '
                'same model (its transformer/ and vae/ configs), e.g. '
                "'stabilityai/stable-diffusion-3.5-medium'.")
        source = original_config
    else:
        check_pretrained(pretrained, kind, SUBFOLDERS)
    from diffusers import AutoencoderKL
    kwargs = dict(local_files_only=local_files_only)
    try:
        vae = dict(AutoencoderKL.load_config(source, subfolder='vae',
                                             **kwargs))
        # any ConfigMixin reads config.json; the class is checked below
        tcfg = dict(AutoencoderKL.load_config(source,
                                              subfolder='transformer',
                                              **kwargs))
    except (OSError, ValueError) as e:
        raise FileNotFoundError(_missing(pretrained, kind, e)) from e
    found = get_family(tcfg.get('_class_name', ''))
    if family is not None and get_family(family) is not found:
        raise ValueError(
            f'family={family!r} but pretrained={pretrained!r} holds a '
            f'{found.class_name} ({found.name!r}). Fix: family='
            f'{found.name!r} or family=None (read from the folder).')
    return found, tcfg, vae


def load_dit_weights(family: DiTFamily, transformer: nn.Module,
                     vae: nn.Module, pretrained: str,
                     original_config: Optional[str] = None,
                     local_files_only: bool = False) -> None:
    """Load pretrained weights into the built transformer and VAE (a
    single file without the VAE, Sana's: the VAE of ``original_config``).
    """
    kind = _source_kind(pretrained)
    kwargs = dict(local_files_only=local_files_only)
    cls, vae_cls = family.model_class(), family.vae_class()
    try:
        if kind == 'single_file':
            src_t = cls.from_single_file(pretrained, config=original_config,
                                         subfolder='transformer', **kwargs)
            if family.single_file_vae:
                src_v = vae_cls.from_single_file(
                    pretrained, config=original_config, subfolder='vae',
                    **kwargs)
            else:
                src_v = vae_cls.from_pretrained(
                    original_config, subfolder='vae', **kwargs)
        else:
            check_pretrained(pretrained, kind, SUBFOLDERS)
            src_t = cls.from_pretrained(pretrained, subfolder='transformer',
                                        **kwargs)
            src_v = vae_cls.from_pretrained(pretrained, subfolder='vae',
                                            **kwargs)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(_missing(pretrained, kind, e)) from e
    t_state = src_t.state_dict()
    v_state = {k: v for k, v in src_v.state_dict().items()
               if not k.startswith(VAE_IGNORE)}
    check_finite(t_state, f'pretrained={pretrained} (transformer)')
    check_finite(v_state, f'pretrained={pretrained} (VAE)')
    copy_weights(transformer,
                 lora_compatible_state_dict(transformer, t_state),
                 'transformer')
    copy_weights(vae, v_state, 'VAE', VAE_IGNORE)


def load_transformer_weights(transformer: nn.Module, path: str) -> None:
    """A transformer state dict file (diffusers layout, same architecture,
    keys optionally prefixed ``transformer.``) as a drop-in."""
    load_weights_file(
        transformer, path, 'transformer_weights', 'transformer.',
        'transformer', 'expected a diffusers-layout transformer state dict '
        '(.safetensors or .pth) of the same architecture, e.g. '
        'transformer/diffusion_pytorch_model.safetensors of a fine-tuned '
        'pipeline folder.')
