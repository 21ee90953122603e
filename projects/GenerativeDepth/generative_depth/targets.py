"""Targets of one-step generative dense prediction: depth normalisation,
affine alignment for evaluation, surface normals from depth.

The conventions follow the sources (see the project README):
* affine-invariant depth (Marigold, GenPercept): per image, the valid depth's
  2 % and 98 % quantiles map to -1 and 1, clipped (Marigold's
  ``scale_shift_depth`` with ``min_max_quantile: 0.02``);
* metric depth: ``d / max_depth`` mapped linearly to [-1, 1];
* evaluation of affine-invariant predictions: least-squares scale and shift
  against the ground truth on its valid pixels (Marigold's and Lotus's
  ``least_square`` alignment).
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_depth(depth: Tensor, valid: Tensor, mode: str = 'affine',
                    max_depth: float = 10., quantile: float = 0.02) -> Tensor:
    """Depth ``(B, 1, H, W)`` to the [-1, 1] range the VAE encodes.

    Args:
        depth (Tensor): Depth in metres.
        valid (Tensor): Bool mask of the same shape.
        mode (str): ``'affine'`` (per-image quantiles) or ``'metric'``.
        max_depth (float): Depth mapped to 1 in ``'metric'`` mode.
        quantile (float): Lower/upper quantile in ``'affine'`` mode.

    Returns:
        Tensor: Normalised depth; invalid pixels are -1.
    """
    if mode == 'metric':
        out = depth / max_depth * 2 - 1
    elif mode == 'affine':
        out = torch.empty_like(depth)
        for i in range(depth.shape[0]):
            vals = depth[i][valid[i]]
            if vals.numel() == 0:
                out[i] = -1
                continue
            lo, hi = torch.quantile(
                vals.float(), torch.tensor([quantile, 1 - quantile],
                                           device=vals.device)).tolist()
            out[i] = (depth[i] - lo) / max(hi - lo, 1e-6) * 2 - 1
    else:
        raise ValueError(f"depth mode must be 'affine' or 'metric', got "
                         f'{mode!r}.')
    return torch.where(valid, out.clamp(-1, 1), torch.full_like(out, -1.))


def align_affine(pred: Tensor, gt: Tensor, valid: Tensor) -> Tensor:
    """Least-squares ``s * pred + t`` fit to ``gt`` on ``valid`` pixels.

    Args:
        pred (Tensor): Relative prediction, any shape.
        gt (Tensor): Ground truth of the same shape.
        valid (Tensor): Bool mask of the same shape.

    Returns:
        Tensor: The aligned prediction (``pred`` unchanged when fewer than
        two valid pixels).
    """
    p, g = pred[valid].double(), gt[valid].double()
    if p.numel() < 2:
        return pred
    a = torch.stack([p, torch.ones_like(p)], dim=1)
    sol = torch.linalg.lstsq(a, g[:, None]).solution[:, 0]
    return (pred.double() * sol[0] + sol[1]).to(pred.dtype)


def depth_to_normals(depth: Tensor, focal: Optional[float] = None) -> Tensor:
    """Camera-space unit normals ``(B, 3, H, W)`` from depth ``(B, 1, H, W)``.

    Back-projects every pixel with a pinhole camera (principal point at the
    image centre, ``focal`` in pixels, default the image width), takes
    central differences of the 3-D points along x and y and their cross
    product. Normals face the camera (negative z; x right, y down, z
    forward) and lie in [-1, 1], the range the VAE encodes.

    Args:
        depth (Tensor): Depth in metres, ``(B, 1, H, W)``.
        focal (float, optional): Focal length in pixels. Defaults to W.

    Returns:
        Tensor: Unit normals, ``(B, 3, H, W)``.
    """
    b, _, h, w = depth.shape
    focal = float(w) if focal is None else float(focal)
    ys, xs = torch.meshgrid(
        torch.arange(h, device=depth.device, dtype=depth.dtype) - (h - 1) / 2,
        torch.arange(w, device=depth.device, dtype=depth.dtype) - (w - 1) / 2,
        indexing='ij')
    pts = torch.cat([xs * depth / focal, ys * depth / focal, depth], dim=1)
    pad = F.pad(pts, (1, 1, 1, 1), mode='replicate')
    dx = pad[:, :, 1:-1, 2:] - pad[:, :, 1:-1, :-2]
    dy = pad[:, :, 2:, 1:-1] - pad[:, :, :-2, 1:-1]
    normals = torch.cross(dy, dx, dim=1)  # faces the camera: z < 0
    return F.normalize(normals, dim=1, eps=1e-8)
