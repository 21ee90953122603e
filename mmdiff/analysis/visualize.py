"""Feature taps (PCA) and per-class cross-attention maps of a diffusion
backbone as pictures: library code of
``tools/analysis_tools/visualize_features.py`` (its docstring lists the
files written)."""
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from torch import Tensor

LABEL_H = 18  # pixels of the caption strip in the summary grid
MIN_TILE = 192  # small images are enlarged to this height in the summary


# ---------------------------------------------------------------------------
# model and image
# ---------------------------------------------------------------------------
def build_model(cfg: Config, checkpoint: str, device: str):
    """The host model of ``cfg`` with ``checkpoint`` loaded, in eval mode."""
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint
    from mmengine.utils import import_modules_from_strings

    from mmdiff.apis import check_checkpoint
    from mmdiff.utils import register_checkpoint_safe_globals
    register_checkpoint_safe_globals()
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    check_checkpoint(checkpoint, model, strict=True)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                           strict=True, logger='silent')
    model.to(device).eval()
    backbone = getattr(model, 'backbone', None)
    if backbone is None or not hasattr(backbone, 'tap_channels'):
        raise TypeError(
            f'{type(backbone).__name__} is not an mmdiff diffusion backbone; '
            'this tool reads its taps (tap_channels, tap_strides).')
    return model, ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


def class_names(cfg: Config, meta: dict, num: int) -> List[str]:
    """Class names from the checkpoint's dataset_meta, else the config's
    train data set class, else ``class{k}``."""
    names = (meta.get('dataset_meta') or {}).get('classes')
    if not names:
        try:
            from mmengine.registry import DATASETS
            ds_type = cfg.train_dataloader.dataset.type
            names = DATASETS.get(ds_type).METAINFO.get('classes')
        except Exception:  # no dataset registered / no METAINFO
            names = None
    names = list(names or [])
    if len(names) != num:
        names = [f'class{k}' for k in range(num)]
    return names


def load_image(path: str) -> np.ndarray:
    """BGR uint8 ``(H, W, 3)``; grey or RGBA files are refused by name."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path!r} does not exist.')
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'{path!r} is not an image OpenCV can read.')
    if img.ndim != 3 or img.shape[2] != 3:
        channels = 1 if img.ndim == 2 else img.shape[2]
        raise ValueError(
            f'{path!r} has {channels} channel(s); the backbone takes RGB. '
            'Fix: convert it, e.g. cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) or '
            'COLOR_BGRA2BGR.')
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(
            np.uint8)
    return img


def to_inputs(model, img_bgr: np.ndarray, device: str) -> Tensor:
    """Normalise like the model's data preprocessor: ``(1, 3, H, W)``."""
    dp = model.data_preprocessor
    convert = getattr(dp, '_channel_conversion',  # mmengine / mmdet
                      getattr(dp, 'channel_conversion', False))  # mmseg
    img = img_bgr[..., ::-1] if convert \
        else img_bgr
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()
    if getattr(dp, '_enable_normalize', False):
        x = (x - dp.mean.cpu()) / dp.std.cpu()
    return x[None].to(device)


# ---------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------
def pca_rgb(feat: Tensor, size: Tuple[int, int]) -> np.ndarray:
    """First 3 principal components of ``(C, h, w)`` as an RGB image."""
    chans, height, width = feat.shape
    x = feat.float().reshape(chans, -1).T  # (pixels, C)
    x = x - x.mean(0, keepdim=True)
    k = min(3, chans, x.shape[0])
    if k and x.abs().max() > 0:
        _, _, v = torch.linalg.svd(x, full_matrices=False)
        comps = x @ v[:k].T  # (pixels, k)
    else:
        comps = torch.zeros(x.shape[0], 0)
    comps = torch.cat([comps, torch.zeros(x.shape[0], 3 - comps.shape[1])],
                      1)
    lo = torch.quantile(comps, 0.01, dim=0)
    hi = torch.quantile(comps, 0.99, dim=0)
    comps = ((comps - lo) / (hi - lo).clamp_min(1e-8)).clamp(0, 1)
    img = comps.T.reshape(3, height, width)[None]
    img = F.interpolate(img, size=size, mode='bilinear', align_corners=False)
    return (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def overlay(img_bgr: np.ndarray, heat: np.ndarray,
            alpha: float = 0.5) -> np.ndarray:
    """Blend a ``[0, 1]`` heat map (jet) over the image."""
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8),
                               cv2.COLORMAP_JET)
    return cv2.addWeighted(img_bgr, 1 - alpha, colour, alpha, 0)


def attention_maps(backbone, feats: Sequence[Tensor],
                   size: Tuple[int, int]) -> Optional[Tensor]:
    """Per-class maps ``(K, H, W)``: the last K channels of the taps with
    attention maps, resized and averaged; None without maps."""
    maps = []
    for feat, chans in zip(feats, backbone.tap_channels):
        if feat.shape[1] > chans:
            m = feat[:1, chans:].float()
            maps.append(F.interpolate(m, size=size, mode='bilinear',
                                      align_corners=False)[0])
    if not maps:
        return None
    return torch.stack(maps).mean(0)


def _safe(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]+', '-', str(name)).strip('-') or 'class'


def _captioned(img: np.ndarray, text: str) -> np.ndarray:
    if img.shape[0] < MIN_TILE:
        scale = MIN_TILE / img.shape[0]
        img = cv2.resize(img, (round(img.shape[1] * scale), MIN_TILE),
                         interpolation=cv2.INTER_NEAREST)
    strip = np.full((LABEL_H, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text[:48], (2, LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX,
                0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], 0)


def grid(tiles: List[Tuple[str, np.ndarray]], cols: int = 4) -> np.ndarray:
    """Captioned tiles of equal size in rows of ``cols``."""
    tiles = [_captioned(img, text) for text, img in tiles]
    blank = np.full_like(tiles[0], 255)
    rows = []
    for i in range(0, len(tiles), cols):
        row = tiles[i:i + cols]
        row += [blank] * (cols - len(row))
        rows.append(np.concatenate(row, 1))
    return np.concatenate(rows, 0)


def visualize(model, img_bgr: np.ndarray, names: List[str], out: str,
              topk: int = 4, device: str = 'cpu') -> Dict[str, str]:
    """Write the PNGs; return ``{caption: path}`` of the written files."""
    os.makedirs(out, exist_ok=True)
    backbone = model.backbone
    size = img_bgr.shape[:2]
    with torch.no_grad():
        feats = backbone(to_inputs(model, img_bgr, device))
    written, tiles = {}, [('image', img_bgr)]
    for i, (feat, chans, stride) in enumerate(
            zip(feats, backbone.tap_channels, backbone.tap_strides)):
        rgb = pca_rgb(feat[0, :chans].cpu(), size)
        path = osp.join(out, f'tap{i}_stride{stride}_pca.png')
        cv2.imwrite(path, rgb[..., ::-1])
        caption = f'tap {i} 1/{stride} PCA'
        written[caption] = path
        tiles.append((caption, rgb[..., ::-1]))
    maps = attention_maps(backbone, feats, size)
    if maps is not None:
        mass = maps.flatten(1).mean(1)
        order = mass.argsort(descending=True)[:topk].tolist()
        for rank, k in enumerate(order):
            heat = maps[k]
            heat = (heat - heat.min()) / (heat.max() - heat.min()).clamp_min(
                1e-8)
            img = overlay(img_bgr, heat.cpu().numpy())
            name = names[k] if k < len(names) else f'class{k}'
            path = osp.join(out, f'attn_{rank}_{_safe(name)}.png')
            cv2.imwrite(path, img)
            caption = f'attn {name} (mass {mass[k].item():.3f})'
            written[caption] = path
            tiles.append((caption, img))
    path = osp.join(out, 'summary.png')
    cv2.imwrite(path, grid(tiles))
    written['summary'] = path
    return written
