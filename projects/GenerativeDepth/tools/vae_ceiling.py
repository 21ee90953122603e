"""Ceiling of latent-space generative depth with a given VAE.

Encodes every ground-truth depth map of a depth folder the way
``mmdiff.GenerativeDepth`` builds its targets (metric: ``d / max_depth`` to
[-1, 1], three equal channels, posterior mode, scaling factor), decodes the
latent again, takes the channel mean, and scores the result against the
ground truth with mmseg's ``DepthMetric``. A one-step predictor of the depth
latent cannot beat this (its best output is the target latent itself).

    python projects/GenerativeDepth/tools/vae_ceiling.py data/demo/vae_depth \
        data/demo/depth/annotations/test
"""
import argparse
import glob
import os.path as osp

import cv2
import numpy as np
import torch


def vae_round_trip(vae, depth: torch.Tensor, max_depth: float = 10.,
                   min_depth: float = 1e-3) -> torch.Tensor:
    """Depth ``(B, 1, H, W)`` (metres) through encoder and decoder (the SD
    core's, as ``GenerativeDepth`` runs them)."""
    from mmdiff.models.diffusion.sd_core import vae_decode, vae_encode
    x = (depth / max_depth * 2 - 1).clamp(-1, 1).repeat(1, 3, 1, 1)
    with torch.no_grad():
        z = vae_encode(vae, x, 'mode', scale=True)
        out = vae_decode(vae, z, scale=True).mean(1, keepdim=True).clamp(
            -1, 1)
    return ((out + 1) / 2 * max_depth).clamp(min=min_depth)


def score(pred: torch.Tensor, gt: torch.Tensor, max_depth: float) -> dict:
    """``DepthMetric`` (rmse, abs_rel, d1, ...) of ``(B, 1, H, W)`` maps."""
    from mmseg.evaluation import DepthMetric
    metric = DepthMetric(min_depth_eval=1e-3, max_depth_eval=max_depth)
    for p, g in zip(pred, gt):
        metric.process({}, [dict(pred_depth_map=dict(data=p),
                                 gt_depth_map=dict(data=g))])
    return metric.compute_metrics(metric.results)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('vae', help='diffusers AutoencoderKL folder')
    parser.add_argument('depth_dir', help='folder of 16-bit depth PNGs')
    parser.add_argument('--depth-scale', type=float, default=1000.,
                        help='PNG value per metre (NYU: 1000)')
    parser.add_argument('--max-depth', type=float, default=10.)
    args = parser.parse_args(argv)
    from diffusers import AutoencoderKL
    files = sorted(glob.glob(osp.join(args.depth_dir, '*.png')))
    if not files:
        raise FileNotFoundError(f'no *.png depth map in {args.depth_dir}')
    gt = torch.stack([torch.from_numpy(
        cv2.imread(f, cv2.IMREAD_UNCHANGED).astype(np.float32)
        / args.depth_scale)[None] for f in files])
    vae = AutoencoderKL.from_pretrained(args.vae, local_files_only=True)
    res = score(vae_round_trip(vae.eval(), gt, args.max_depth), gt,
                args.max_depth)
    print(f'VAE round trip of {len(files)} depth maps: rmse '
          f'{res["rmse"]:.3f}, abs_rel {res["abs_rel"]:.3f}, '
          f'd1 {res["d1"]:.3f}')
    return res


if __name__ == '__main__':
    main()
