"""Write a trained :class:`DiffusionPretrainer` as a diffusers folder.

The folder has ``unet/`` and ``vae/`` (``save_pretrained``, safetensors) and
``scheduler/`` (the training ``DDPMScheduler``), the layout every mmdiff
backbone reads with ``pretrained=FOLDER``, plus ``mmdiff_pretrain.json``
(what was trained, how, and the sha256 of every weight file, checked when
the folder is loaded as ``pretrained=``). A caption-conditioned model also
writes its (frozen) ``text_encoder/`` and ``tokenizer/``, so the folder is
a Stable Diffusion folder for the backbones' ``text_encoder=`` too (class
embeddings, CaptionVPD). LoRA adapters are merged into the U-Net's weights,
so the folder is a plain U-Net. It is published with
:func:`mmdiff.utils.fileio.publish_folder` (temp sibling, fsync, rename; the
previous export replaced), so a reader never sees a half-written folder.
During training the export is staged first (:func:`stage_diffusers`) and
published (:func:`publish_staged`) only once its weights are trusted;
:func:`recover_exports` restores the newest complete copy a kill left aside.
"""
import copy
import json
import os
import os.path as osp
import re
from typing import Callable, Dict, List, Optional

import numpy as np
import torch
from torch import Tensor, nn

from mmdiff.utils.checkpoint_io import PRETRAIN_META as META_FILE
from mmdiff.utils.checkpoint_io import weight_hashes

#: Mark of an export written but not yet trusted: ``.<name>.staged-*``.
STAGED = 'staged'


def plain_unet_state(unet: nn.Module,
                     state: Optional[Dict[str, Tensor]] = None
                     ) -> Dict[str, Tensor]:
    """A plain ``UNet2DConditionModel`` state dict, LoRA merged.

    Args:
        unet (nn.Module): The trained U-Net (possibly peft-wrapped).
        state (dict, optional): Its weights to use instead of its own (e.g.
            the EMA weights from a checkpoint), in ``unet``'s keys.
            Defaults to None (``unet.state_dict()``).

    Returns:
        dict: Keys of a U-Net without adapters.
    """
    state = unet.state_dict() if state is None else state
    if not any('lora_' in k for k in state):
        return {k: v.detach().clone() for k, v in state.items()}
    from peft.tuners.tuners_utils import BaseTunerLayer
    merged = copy.deepcopy(unet)
    merged.load_state_dict(state)
    for module in merged.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    return {k.replace('.base_layer.', '.'): v.detach().clone()
            for k, v in merged.state_dict().items() if 'lora_' not in k}


def build_plain_unet(model, state: Optional[Dict[str, Tensor]] = None):
    """A new plain U-Net holding ``model``'s (or ``state``'s) weights.

    Built without touching the global RNG (resumed runs stay identical).

    Args:
        model (DiffusionPretrainer): The trained model.
        state (dict, optional): Full model state dict (keys ``unet.*``),
            e.g. a checkpoint's EMA ``state_dict``. Defaults to None.
    """
    from diffusers import UNet2DConditionModel
    unet_state = None
    if state is not None:
        unet_state = {k[len('unet.'):]: v for k, v in state.items()
                      if k.startswith('unet.')}
    weights = plain_unet_state(model.unet, unet_state)
    with torch.random.fork_rng(devices=[]):
        plain = UNet2DConditionModel.from_config(model.unet.config)
    plain.load_state_dict(weights, strict=True)
    return plain.to(next(model.unet.parameters()).device).eval()


def export_diffusers(model, out_dir: str,
                     state: Optional[Dict[str, Tensor]] = None,
                     meta: Optional[dict] = None) -> str:
    """Write ``model``'s U-Net + VAE (+ scheduler, + text encoder and
    tokenizer if caption-conditioned) as a diffusers folder.

    Args:
        model (DiffusionPretrainer): The trained model.
        out_dir (str): Target folder (replaced as a whole).
        state (dict, optional): Model state dict to export instead of the
            live weights, e.g. the EMA weights mmengine's ``EMAHook`` puts
            in a checkpoint's ``state_dict``. Defaults to None.
        meta (dict, optional): Extra fields for ``mmdiff_pretrain.json``.

    Returns:
        str: ``out_dir``.
    """
    from mmdiff.utils.fileio import publish_folder
    out_dir = osp.abspath(out_dir)
    fill = _filler(model, out_dir, state, meta)
    recover_exports(out_dir)  # a killed publish: its newest complete one
    publish_folder(out_dir, fill, replace=True,
                   action='exporting the diffusers folder')
    return out_dir


def _filler(model, out_dir: str, state: Optional[Dict[str, Tensor]],
            meta: Optional[dict]) -> Callable[[str], None]:
    """``fill(folder)`` writing the export of :func:`export_diffusers`."""
    from mmdiff.utils.fileio import atomic_write_json
    unet = build_plain_unet(model, state)
    info = dict(prediction_type=model.prediction_type,
                latent_mode=model.latent_mode,
                scaling_factor=model.scaling_factor,
                conditioning=model.conditioning, snr_gamma=model.snr_gamma,
                lora_merged=model.lora is not None,
                cross_attention_dim=model.cross_attention_dim,
                backbone_hint=dict(pretrained=out_dir, scale_latents=True),
                **(meta or {}))
    if model.text_encoder is not None:
        info.update(text_encoder=model.text_encoder.source,
                    max_length=model.text_encoder.max_length,
                    caption_dropout=model.caption_dropout)

    def fill(tmp: str) -> None:
        unet.save_pretrained(osp.join(tmp, 'unet'))
        model.vae.save_pretrained(osp.join(tmp, 'vae'))
        model.scheduler.save_pretrained(osp.join(tmp, 'scheduler'))
        if model.class_embed is not None:
            torch.save(model.class_embed.weight.detach().cpu().clone(),
                       osp.join(tmp, 'class_embeddings.pth'))
        if model.text_encoder is not None:
            model.text_encoder.save(tmp)
        # checked when the folder is loaded as pretrained= (a changed byte)
        atomic_write_json(osp.join(tmp, META_FILE),
                          dict(info, sha256=weight_hashes(tmp)), indent=1)

    return fill


def export_meta(folder: str) -> Optional[dict]:
    """The ``mmdiff_pretrain.json`` of an export folder (written last: a
    folder without it is incomplete), or None."""
    try:
        with open(osp.join(folder, META_FILE)) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def export_iter(folder: str) -> Optional[int]:
    """The training iteration of a COMPLETE export folder, else None."""
    it = (export_meta(folder) or {}).get('iter')
    return it if isinstance(it, int) else None


def stage_diffusers(model, out_dir: str,
                    state: Optional[Dict[str, Tensor]] = None,
                    meta: Optional[dict] = None) -> str:
    """Write the export of :func:`export_diffusers` without publishing it.

    The folder is complete and fsynced, beside ``out_dir`` as
    ``.<name>.staged-<pid>-<hex>`` (not a temporary that cleanups remove):
    :func:`publish_staged` puts it in place once its weights are trusted.

    Returns:
        str: The staged folder.
    """
    from mmdiff.utils.fileio import fill_sibling
    out_dir = osp.abspath(out_dir)
    return fill_sibling(out_dir, _filler(model, out_dir, state, meta),
                        action='staging the diffusers export', tag=STAGED)


def staged_exports(out_dir: str) -> Dict[str, Optional[int]]:
    """``{staged folder: its iteration (None: incomplete)}`` of
    ``out_dir``."""
    out_dir = osp.abspath(out_dir)
    parent, name = osp.dirname(out_dir), osp.basename(out_dir)
    if not osp.isdir(parent):
        return {}
    mark = f'.{name}.{STAGED}-'
    return {osp.join(parent, e): export_iter(osp.join(parent, e))
            for e in sorted(os.listdir(parent)) if e.startswith(mark)}


def publish_staged(staged: str, out_dir: str) -> str:
    """Put a staged export in place of ``out_dir`` (previous one replaced).

    It is first renamed to a temporary name (``.<name>.tmp-*``: trusted),
    then swapped in by :func:`mmdiff.utils.fileio.replace_folder`; a kill
    at any point leaves ``out_dir`` or complete trusted copies, which
    :func:`recover_exports` restores.
    """
    from mmdiff.utils.fileio import folder_lock, replace_folder, temp_sibling
    out_dir = osp.abspath(out_dir)
    with folder_lock(out_dir):
        tmp = temp_sibling(out_dir)
        os.replace(staged, tmp)
        return replace_folder(tmp, out_dir,
                              action='publishing the diffusers export')


def recover_exports(out_dir: str) -> List[str]:
    """Restore the newest complete export a killed publish left aside.

    A kill between the two renames of a publish leaves no ``out_dir`` but
    the previous export (``.<name>.old-*``) and the new one
    (``.<name>.tmp-*``), both complete; a kill before the first leaves
    ``out_dir`` and a newer complete ``.tmp-*``. The newest complete one
    (by the iteration in its ``mmdiff_pretrain.json``; ``out_dir`` on a tie)
    becomes ``out_dir``; a replaced ``out_dir`` is kept as ``.old-*``.
    Nothing complete is deleted here (incomplete temporaries and superseded
    copies are removed by the next publish).

    Returns:
        list[str]: Log lines, one per folder restored.
    """
    from mmdiff.utils.fileio import TMP_MARK, folder_lock, temp_sibling
    out_dir = osp.abspath(out_dir)
    parent, name = osp.dirname(out_dir), osp.basename(out_dir)
    if not osp.isdir(parent):
        return []
    pattern = re.compile(rf'^\.{re.escape(name)}\.(?:tmp|old)-')
    with folder_lock(out_dir):
        found = {osp.join(parent, e): export_iter(osp.join(parent, e))
                 for e in sorted(os.listdir(parent)) if pattern.match(e)}
        found = {k: v for k, v in found.items() if v is not None}
        if not found:
            return []
        best = max(found, key=lambda k: found[k])
        current = export_iter(out_dir) if osp.isdir(out_dir) else None
        if current is not None and current >= found[best]:
            return []
        if osp.lexists(out_dir):
            os.replace(out_dir, temp_sibling(out_dir).replace(
                TMP_MARK, '.old-', 1))
        os.replace(best, out_dir)
        return [f'Restored the diffusers export of iteration {found[best]} '
                f'to {out_dir} from {osp.basename(best)} (left there by a '
                'run killed while publishing it).']


def image_grid(images: Tensor, nrow: int = 4) -> np.ndarray:
    """``(N, 3, H, W)`` images in [-1, 1] as one RGB uint8 grid."""
    imgs = ((images.float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    imgs = imgs.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    n, h, w, c = imgs.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    grid = np.full((rows * (h + 2) + 2, ncol * (w + 2) + 2, c), 255,
                   np.uint8)
    for i, img in enumerate(imgs):
        r, col = divmod(i, ncol)
        grid[2 + r * (h + 2):2 + r * (h + 2) + h,
             2 + col * (w + 2):2 + col * (w + 2) + w] = img
    return grid
