"""Where U-Net and VAE weights come from.

Sources: a diffusers folder, a hub id, an original single file, or configs.

Architecture (configs) and weights are resolved separately so that a backbone
can build its modules in ``__init__`` and read weights in ``init_weights()``:

* :func:`load_diffusion_configs` returns the ``UNet2DConditionModel`` and
  ``AutoencoderKL`` config dicts (cheap: no weights are read, except for a
  single file without ``original_config``, whose model type diffusers infers
  from the checkpoint keys).
* :func:`load_diffusion_weights` copies pretrained weights into already-built
  modules, through ``from_pretrained`` (folder / hub id) or
  ``from_single_file`` (original ldm ``.ckpt`` / ``.safetensors``).
"""
import os.path as osp
from typing import Optional, Union

from torch import nn

from mmdiff.utils.checkpoint_io import (check_exported_file, check_finite,
                                        read_checkpoint, verify_checkpoint,
                                        verify_weights_folder)
from mmdiff.utils.hub import is_hub_id
from .lora import lora_compatible_state_dict

SINGLE_FILE_SUFFIXES = ('.ckpt', '.safetensors', '.pt', '.pth', '.bin')
ConfigLike = Optional[Union[str, dict]]


def source_kind(pretrained: Optional[str]) -> str:
    """Classify a ``pretrained`` value.

    Args:
        pretrained (str, optional): Diffusers folder, hub id, single-file
            checkpoint path, or None.

    Returns:
        str: One of ``'none'``, ``'single_file'``, ``'folder'``, ``'hub'``.

    Raises:
        FileNotFoundError: If the value looks like a local path that does not
            exist.
    """
    if pretrained is None:
        return 'none'
    path = osp.expanduser(str(pretrained))
    if osp.isdir(path):
        return 'folder'
    if path.lower().endswith(SINGLE_FILE_SUFFIXES):
        if osp.isfile(path) or path.startswith(('http://', 'https://')):
            return 'single_file'
        raise FileNotFoundError(_missing_message(pretrained, 'single_file'))
    if is_hub_id(pretrained):
        return 'hub'
    raise FileNotFoundError(_missing_message(pretrained, 'folder'))


def _missing_message(pretrained: str, kind: str, cause: Exception = None,
                     local_files_only: bool = False) -> str:
    """Build the single error message for weights that cannot be found."""
    if kind == 'single_file':
        looked = (f'a single-file checkpoint at {pretrained!r} (and, without '
                  'original_config, the diffusers config diffusers infers '
                  'for it, on the Hub or in the HF cache)')
    elif kind == 'folder':
        looked = (f'a diffusers folder at {pretrained!r} (with unet/ and vae/ '
                  'subfolders holding config.json and weights)')
    else:
        where = ('in the local Hugging Face cache only (local_files_only=True'
                 ' or HF_HUB_OFFLINE=1)' if local_files_only else
                 'in the local Hugging Face cache and on the Hub')
        looked = (f'the hub id {pretrained!r} (subfolders unet/ and vae/) '
                  f'{where}')
    msg = (f'mmdiff could not load Stable Diffusion weights: looked for '
           f'{looked}.')
    if cause is not None:
        msg += f' Cause: {type(cause).__name__}: {str(cause).rstrip(".")}.'
    repo = pretrained if kind == 'hub' else \
        'stable-diffusion-v1-5/stable-diffusion-v1-5'
    msg += (' To fix: download them on a machine with network, e.g. '
            f'`hf download {repo} --include "unet/*" "vae/*" --local-dir '
            'DIR` (or `huggingface-cli download ...`), and set '
            'backbone.pretrained=DIR; or set pretrained to an original '
            '.ckpt/.safetensors file (offline: with original_config set to '
            "its ldm yaml, e.g. CompVis' v1-inference.yaml); or set "
            'pretrained=None with unet_cfg/vae_cfg for a randomly '
            'initialised model.')
    return msg


def check_pretrained(pretrained: str, kind: str,
                     subfolders: tuple = ('unet', 'vae')) -> None:
    """mmdiff's checks of a local ``pretrained`` source, before diffusers
    reads it, so that a damaged or unsafe file is reported as such (not as
    weights to download): a single file gets every check of
    :func:`mmdiff.utils.checkpoint_io.read_checkpoint`; a diffusers folder
    the sha256 list its export recorded and those checks on each U-Net and
    VAE weight file (``verify_weights_folder``). Hub ids and URLs are left
    to diffusers.
    """
    shown = f'pretrained={pretrained}'
    if kind == 'single_file' and '://' not in str(pretrained):
        verify_checkpoint(osp.expanduser(str(pretrained)), shown=shown)
    elif kind == 'folder':
        verify_weights_folder(osp.expanduser(str(pretrained)),
                              subfolders, shown)


def _single_file_configs(pretrained: str, original_config: ConfigLike,
                         local_files_only: bool) -> tuple:
    """Diffusers configs of a single-file checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm, fetch_diffusers_config,
        fetch_original_config, load_single_file_checkpoint)
    if original_config is not None:
        if isinstance(original_config, str):
            original_config = fetch_original_config(
                original_config, local_files_only=local_files_only)
        # The checkpoint only feeds ``sample_size``, irrelevant to features;
        # an empty dict keeps ``__init__`` from reading the weights.
        return (create_unet_diffusers_config_from_ldm(original_config, {}),
                create_vae_diffusers_config_from_ldm(original_config, {}))
    checkpoint = load_single_file_checkpoint(
        pretrained, local_files_only=local_files_only)
    repo = fetch_diffusers_config(checkpoint)['pretrained_model_name_or_path']
    del checkpoint
    kwargs = dict(local_files_only=local_files_only)
    return (dict(UNet2DConditionModel.load_config(repo, subfolder='unet',
                                                  **kwargs)),
            dict(AutoencoderKL.load_config(repo, subfolder='vae', **kwargs)))


def load_diffusion_configs(pretrained: Optional[str] = None,
                           unet_cfg: Optional[dict] = None,
                           vae_cfg: Optional[dict] = None,
                           original_config: ConfigLike = None,
                           local_files_only: bool = False) -> tuple:
    """Resolve the U-Net and VAE architectures.

    Args:
        pretrained (str, optional): Diffusers folder, hub id or single file.
            None builds from ``unet_cfg``/``vae_cfg``. Defaults to None.
        unet_cfg (dict, optional): ``UNet2DConditionModel`` config, used when
            ``pretrained`` is None. Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config, used when
            ``pretrained`` is None. Defaults to None.
        original_config (str | dict, optional): The ldm yaml (path or dict)
            of a single-file checkpoint. Without it diffusers infers the
            model type from the checkpoint and fetches the matching diffusers
            config (Hub or HF cache). Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.

    Returns:
        tuple[dict, dict]: The U-Net and VAE config dicts.
    """
    kind = source_kind(pretrained)
    if kind == 'none':
        if unet_cfg is None or vae_cfg is None:
            raise ValueError(
                'pretrained=None needs both unet_cfg and vae_cfg (diffusers '
                'UNet2DConditionModel / AutoencoderKL config dicts, e.g. '
                'mmdiff.models.diffusion.tiny_sd_configs()); or set '
                'pretrained to a diffusers folder, hub id or .ckpt file.')
        return dict(unet_cfg), dict(vae_cfg)
    if kind == 'single_file' and original_config is None:
        check_pretrained(pretrained, kind)  # diffusers reads it to infer
    try:
        if kind == 'single_file':
            return _single_file_configs(pretrained, original_config,
                                        local_files_only)
        from diffusers import AutoencoderKL, UNet2DConditionModel
        kwargs = dict(local_files_only=local_files_only)
        return (dict(UNet2DConditionModel.load_config(
            pretrained, subfolder='unet', **kwargs)),
                dict(AutoencoderKL.load_config(
                    pretrained, subfolder='vae', **kwargs)))
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            _missing_message(pretrained, kind, e, local_files_only)) from e


def copy_weights(dst: nn.Module, state: dict, what: str,
                 ignore_prefixes: tuple = ()) -> None:
    """Copy a state dict into ``dst``, failing loudly on any missing key.

    Args:
        dst (nn.Module): Module to fill.
        state (dict): Source state dict (diffusers layout).
        what (str): Name used in the error message.
        ignore_prefixes (tuple[str]): Source keys with these prefixes are
            dropped (e.g. the VAE decoder, which mmdiff never builds).
    """
    state = {k: v for k, v in state.items()
             if not k.startswith(ignore_prefixes)}
    try:
        missing, unexpected = dst.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        lines = str(e).splitlines()
        raise RuntimeError(
            f'Pretrained {what} does not match the built architecture: '
            f'{" ".join(x.strip() for x in lines[1:3])} ... '
            f'({len(lines) - 1} mismatches). Check that unet_cfg/vae_cfg/'
            'original_config describe the same model as pretrained.') from e
    if missing or unexpected:
        raise RuntimeError(
            f'Pretrained {what} does not match the built architecture: '
            f'missing {missing[:5]}... ({len(missing)}), unexpected '
            f'{unexpected[:5]}... ({len(unexpected)}). Check that unet_cfg/'
            'vae_cfg/original_config describe the same model as pretrained.')


def _ema_unet(checkpoint: dict, pretrained: str) -> dict:
    """A single file's U-Net as its EMA copy, when it has one (a full SD
    training file: ``v1-5-pruned.ckpt``), as in the EMA-only file VPD starts
    from; diffusers' ``from_single_file`` would take the raw weights."""
    from mmengine.logging import print_log

    from .ema import ema_entries, take_unet_ema
    if not ema_entries(checkpoint):
        return checkpoint
    out, missing, extra = take_unet_ema(checkpoint)
    if missing or extra:
        raise ValueError(
            f'pretrained={pretrained}: its EMA copy of the U-Net (model_ema.*)'
            f' does not match the U-Net ({len(missing)} weights without an '
            f'EMA entry, {len(extra)} EMA entries of no weight, e.g. '
            f'{(missing + extra)[:3]}). Fix: use the EMA-only file, or '
            'convert this one with tools/model_converters/vpd_to_mmdiff.py '
            '(--no-ema for the raw weights) and load that.')
    print_log(f'pretrained={pretrained}: the U-Net weights are its EMA copy '
              '(model_ema.*), as in v1-5-pruned-emaonly, the start of VPD; '
              'for the raw weights convert the file with vpd_to_mmdiff.py '
              '--no-ema and load that', logger='current')
    return out


def load_diffusion_weights(unet: nn.Module, vae: nn.Module,
                           pretrained: str,
                           original_config: ConfigLike = None,
                           local_files_only: bool = False,
                           vae_ignore: tuple = ('decoder.',
                                                'post_quant_conv.')) -> None:
    """Load pretrained weights into built U-Net and VAE modules.

    Args:
        unet (nn.Module): The ``UNet2DConditionModel`` to fill.
        vae (nn.Module): The ``AutoencoderKL`` to fill (decoder removed).
        pretrained (str): Diffusers folder, hub id or single file.
        original_config (str | dict, optional): ldm yaml of a single file.
            Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        vae_ignore (tuple[str]): VAE keys not built by mmdiff.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    kind = source_kind(pretrained)
    kwargs = dict(local_files_only=local_files_only)
    check_pretrained(pretrained, kind)  # damaged/unsafe: not "not found"
    try:
        if kind == 'single_file':
            from diffusers.loaders.single_file_utils import \
                load_single_file_checkpoint
            checkpoint = load_single_file_checkpoint(pretrained, **kwargs)
            checkpoint = _ema_unet(checkpoint, pretrained)
            if original_config is not None:
                kwargs['original_config'] = original_config
            src_unet = UNet2DConditionModel.from_single_file(
                checkpoint, **kwargs)
            src_vae = AutoencoderKL.from_single_file(checkpoint, **kwargs)
            del checkpoint
        else:
            src_unet = UNet2DConditionModel.from_pretrained(
                pretrained, subfolder='unet', **kwargs)
            src_vae = AutoencoderKL.from_pretrained(
                pretrained, subfolder='vae', **kwargs)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            _missing_message(pretrained, kind, e, local_files_only)) from e
    unet_state = src_unet.state_dict()
    vae_state = {k: v for k, v in src_vae.state_dict().items()
                 if not k.startswith(vae_ignore)}
    check_finite(unet_state, f'pretrained={pretrained} (U-Net)')
    check_finite(vae_state, f'pretrained={pretrained} (VAE)')
    copy_weights(unet, lora_compatible_state_dict(unet, unet_state), 'U-Net')
    copy_weights(vae, vae_state, 'VAE', vae_ignore)


def load_unet_weights(unet: nn.Module, path: str) -> None:
    """Load a U-Net state dict file as a drop-in (e.g. CleanDIFT).

    The file holds a full ``UNet2DConditionModel`` state dict in diffusers
    layout (``.safetensors``, or a ``.pth``/``.bin``/``.ckpt`` torch file,
    optionally wrapped in ``state_dict``, keys optionally prefixed
    ``unet.``), of the same architecture as the built U-Net; it replaces
    every U-Net weight (missing or extra keys are errors).

    Args:
        unet (nn.Module): The built ``UNet2DConditionModel``.
        path (str): The state dict file.
    """
    load_weights_file(
        unet, path, 'unet_weights', 'unet.', 'U-Net',
        'expected a diffusers-layout UNet2DConditionModel state dict '
        "(.safetensors or .pth), e.g. CleanDIFT's "
        'cleandift_sd21_unet.safetensors downloaded with `hf download '
        'CompVis/cleandift <file> --local-dir DIR`.')


def load_weights_file(module: nn.Module, path: str, arg: str, prefix: str,
                      what: str, expected: str) -> None:
    """Load a whole-model state dict file into ``module`` (strict).

    Args:
        module (nn.Module): The built model (LoRA-wrapped or not).
        path (str): ``.safetensors`` or a torch file, optionally wrapped in
            ``state_dict``, keys optionally prefixed ``prefix``.
        arg (str): The backbone argument, for messages.
        prefix (str): Key prefix dropped when every key has it.
        what (str): The model's name, for messages.
        expected (str): What the file should be, for the not-found error.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'{arg}={path!r} does not exist: {expected}')
    check_exported_file(path, shown=f'{arg}={path}')
    state = read_checkpoint(path, shown=f'{arg}={path}')
    if isinstance(state, dict):
        state = state.get('state_dict', state)
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    check_finite(state, f'{arg}={path}')
    copy_weights(module, lora_compatible_state_dict(module, state),
                 f'{what} state dict {path!r}')


def load_vae_weights(vae: nn.Module, source: str,
                     local_files_only: bool = False,
                     vae_ignore: tuple = ('decoder.',
                                          'post_quant_conv.'),
                     vae_class=None) -> None:
    """Load a stand-alone ``AutoencoderKL`` into the built VAE (encoder).

    Swaps in a VAE other than the one shipped with ``pretrained``, e.g.
    ``stabilityai/sd-vae-ft-mse`` for SD 1.x, or the demos' tiny VAE. The
    source's architecture must equal the built VAE's (missing, extra or
    mis-shaped encoder keys are errors); the decoder is never read.

    Args:
        vae (nn.Module): The built ``AutoencoderKL`` (decoder removed).
        source (str): A diffusers ``AutoencoderKL`` folder (``config.json``
            plus weights), a pipeline folder with a ``vae/`` subfolder, or a
            hub id of either.
        local_files_only (bool): Never touch the network. Defaults to False.
        vae_ignore (tuple[str]): VAE keys not built by mmdiff.
        vae_class (type, optional): The source's diffusers class (Sana's
            ``AutoencoderDC``). Defaults to None (``AutoencoderKL``).
    """
    if vae_class is None:
        from diffusers import AutoencoderKL as vae_class
    try:
        kind = source_kind(source)
    except FileNotFoundError:  # its message speaks of `pretrained`
        kind = None
    if kind not in ('folder', 'hub'):
        raise FileNotFoundError(
            f'vae_weights={source!r} is not a folder or a hub id: give a '
            'diffusers AutoencoderKL folder (AutoencoderKL.save_pretrained '
            'writes one; the demos\' DemoVAEHook makes theirs), a pipeline '
            'folder with vae/, or a hub id such as stabilityai/sd-vae-ft-mse.')
    path = osp.expanduser(str(source))
    subfolder = 'vae' if osp.isfile(osp.join(path, 'vae',
                                             'config.json')) else None
    try:
        src = vae_class.from_pretrained(
            source, subfolder=subfolder, local_files_only=local_files_only)
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f'vae_weights={source!r}: no diffusers {vae_class.__name__} '
            'found there '
            f'({type(e).__name__}: {e}). Give a folder written by '
            'AutoencoderKL.save_pretrained (or a pipeline folder with vae/), '
            'or a hub id cached locally.') from e
    copy_weights(vae, src.state_dict(), f'VAE {source!r}', vae_ignore)
