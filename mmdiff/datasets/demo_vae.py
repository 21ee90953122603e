"""The demos' VAE: a tiny ``AutoencoderKL`` pretrained on demo scenes.

VPD uses Stable Diffusion's VAE frozen, and that VAE was pretrained (as an
autoencoder, on images, without labels) before any VPD training. The demos
mirror this: :func:`ensure_demo_vae` trains the tiny SD-shaped VAE as an
autoencoder (reconstruction + SD's tiny KL weight) on freshly rendered demo
scenes drawn from their own seed (never the demo data sets' images, and no
labels), then saves it with ``save_pretrained`` so that the backbone loads it
through ``vae_weights``. A random frozen VAE keeps too little of the image:
on the demo scenes, a small conv probe on its latents reaches about 40 mIoU,
on the pretrained one's about 70 (pooled RGB: 75).

The result is a pure function of the arguments (seeded, single-threaded
order of draws); the folder is written atomically
(:func:`mmdiff.utils.fileio.publish_folder`: temp folder + rename) and
carries the arguments and the sha256 of each file in
``mmdiff_demo_vae.json``, so a folder made with other arguments, or
incomplete, is refused rather than silently reused. A lock file
(``.<name>.lock`` beside ``out_dir``, ``filelock``) lets one writer train
it while others wait.
"""
import json
import os
import os.path as osp
import sys
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.utils import ProgressBar

from mmdiff.utils.fileio import (atomic_write_json, folder_lock,
                                 publish_folder, sha256_tree)
from .demo_scene import render_scene

META_FILE = 'mmdiff_demo_vae.json'


def _batch(rng: np.random.Generator, batch_size: int, size: int,
           num_depth: int = 0, max_depth: float = 10.) -> torch.Tensor:
    """Render ``batch_size`` scenes as a ``(B, 3, size, size)`` batch in
    ``[-1, 1]``, the range the backbone feeds the VAE. The first
    ``num_depth`` entries are the scenes' depth maps instead, as grey images
    (``d / max_depth`` to [-1, 1], the generative-depth targets' range)."""
    out = []
    for i in range(batch_size):
        scene = render_scene(rng, size)
        if i < num_depth:
            grey = np.clip(scene['depth'] / max_depth, 0, 1) * 255
            out.append(np.repeat(grey[..., None], 3, axis=2))
        else:
            out.append(scene['img'])
    x = torch.from_numpy(np.stack(out).astype(np.float32)).permute(0, 3, 1, 2)
    return x / 127.5 - 1


def train_demo_vae(vae_cfg: dict, steps: int = 200, batch_size: int = 4,
                   size: int = 128, lr: float = 1e-3, kl_weight: float = 1e-6,
                   seed: int = 1000, log_interval: int = 50,
                   depth_fraction: float = 0.):
    """Train a tiny ``AutoencoderKL`` on rendered demo scenes.

    Args:
        vae_cfg (dict): ``AutoencoderKL`` config (e.g. ``tiny_vae_cfg``).
        steps (int): Optimiser steps. Defaults to 200.
        batch_size (int): Scenes per step. Defaults to 4.
        size (int): Scene size in pixels. Defaults to 128.
        lr (float): Adam learning rate. Defaults to 1e-3.
        kl_weight (float): Weight of the posterior's KL term (SD: 1e-6).
            Defaults to 1e-6.
        seed (int): Seed of the weights, the scenes and the posterior
            samples. Defaults to 1000 (the demo data sets use 0).
        log_interval (int): Log the reconstruction error every this many
            steps. Defaults to 50.
        depth_fraction (float): Share of each batch that is a rendered
            scene's depth map (a grey image) instead of its RGB image, for
            the generative-depth demo, whose VAE must also encode and decode
            depth maps, as SD's VAE does (Marigold checks this). Defaults to
            0 (RGB only, the VPD demos' VAE).

    Returns:
        tuple[AutoencoderKL, float]: The trained VAE (eval mode) and the
        reconstruction MSE of the last step.
    """
    from diffusers import AutoencoderKL
    # the caller's global RNG is left as it was: a run that makes the VAE
    # and one that finds it made go on with the same random stream
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(**vae_cfg).train()
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    if not 0. <= depth_fraction <= 1.:
        raise ValueError(f'depth_fraction must be in [0, 1], got '
                         f'{depth_fraction}.')
    num_depth = int(round(batch_size * depth_fraction))
    optim = torch.optim.Adam(vae.parameters(), lr=lr)
    start = time.perf_counter()
    rec = float('nan')
    # mmengine's progress bar: steps done, rate, elapsed time and ETA
    bar = ProgressBar(steps, file=sys.stdout)
    for step in range(1, steps + 1):
        x = _batch(rng, batch_size, size, num_depth)
        posterior = vae.encode(x).latent_dist
        out = vae.decode(posterior.sample(generator=gen)).sample
        loss_rec = F.mse_loss(out, x)
        loss = loss_rec + kl_weight * posterior.kl().mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        rec = loss_rec.item()
        bar.update()
        if step % log_interval == 0 or step == steps:
            bar.file.write('\n')  # keep the bar's line; log below it
            print_log(f'demo VAE step {step}/{steps}: reconstruction MSE '
                      f'{rec:.4f} ({time.perf_counter() - start:.0f} s)',
                      logger='current')
    return vae.eval(), rec


def ensure_demo_vae(out_dir: str, vae_cfg: dict, steps: int = 200,
                    batch_size: int = 4, size: int = 128, lr: float = 1e-3,
                    seed: int = 1000,
                    depth_fraction: float = 0.) -> Optional[str]:
    """Make the demos' pretrained VAE in ``out_dir`` unless it is there.

    Args:
        out_dir (str): Diffusers ``AutoencoderKL`` folder to write.
        vae_cfg (dict): ``AutoencoderKL`` config to build and train.
        steps, batch_size, size, lr, seed, depth_fraction: See
            :func:`train_demo_vae` (``depth_fraction`` is recorded in the
            folder's metadata only when non-zero).

    Returns:
        str | None: ``out_dir`` when it was written now, None when a folder
        made with the same arguments was already there.

    Raises:
        FileExistsError: ``out_dir`` exists but was not made by this function
            with these arguments.
    """
    meta = dict(vae_cfg=dict(vae_cfg), steps=steps, batch_size=batch_size,
                size=size, lr=lr, seed=seed)
    if depth_fraction:
        meta['depth_fraction'] = depth_fraction
    # through JSON, so tuples compare equal to the lists read back
    meta = json.loads(json.dumps(meta))
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    # one writer at a time, across processes, containers and nodes sharing
    # the folder; the others wait and then find its VAE
    with folder_lock(out_dir):
        if osp.exists(out_dir):
            _check_existing(out_dir, meta)
            return None
        print_log(f'Training the demos\' VAE ({steps} steps) into '
                  f'{out_dir}; once, reused afterwards.', logger='current')
        vae, rec = train_demo_vae(vae_cfg, steps=steps,
                                  batch_size=batch_size, size=size, lr=lr,
                                  seed=seed, depth_fraction=depth_fraction)

        def fill(tmp: str) -> None:
            vae.save_pretrained(tmp)
            atomic_write_json(osp.join(tmp, META_FILE),
                              dict(meta, final_reconstruction_mse=rec,
                                   files=_checksums(tmp)), indent=1)

        publish_folder(out_dir, fill, action="writing the demos' VAE")
    return out_dir


def _checksums(folder: str) -> dict:
    """``{file name: sha256}`` of the files of a VAE folder."""
    return sha256_tree(folder, exclude=(META_FILE, ))


def _check_existing(out_dir: str, meta: dict) -> None:
    """Refuse a folder not made by :func:`ensure_demo_vae` with ``meta``."""
    meta_path = osp.join(out_dir, META_FILE)
    found = None
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            found = json.load(f)
        found.pop('final_reconstruction_mse', None)
        files = found.pop('files', None)
        if found == meta and files is not None and \
                _checksums(out_dir) != files:
            raise FileExistsError(
                f'{out_dir!r} is incomplete or modified: its files differ '
                f'from the sha256 list in {META_FILE}. Delete the folder to '
                'have it made again.')
    if found != meta:
        raise FileExistsError(
            f'{out_dir!r} exists but is not the demo VAE these arguments '
            f'describe ({META_FILE} {"differs" if found else "missing"}). '
            'Delete the folder to have it made again, or point the '
            "hook's out_dir and the backbone's vae_weights elsewhere.")
