"""Linear probe of a frozen diffusion backbone: which timestep, which tap?

    python tools/analysis_tools/probe_features.py CONFIG \
        [--pretrained FOLDER] [--timesteps 1 50 100 200 400] [--taps 0 1 2 3] \
        [--num-train 64] [--num-val 32] [--steps 200] [--out DIR]

The way the text-free diffusion representation papers pick t (DDAE, "Do
text-free diffusion models learn discriminative visual representations?"):
the backbone of CONFIG (an mmseg segmentation or depth config whose
``model.backbone`` is an mmdiff diffusion backbone) is frozen, noise is added
at each timestep t (seeded, the same for every image set), the features of
every tap are computed once, and a linear head (a 1x1 conv, upsampled
bilinearly to the label size) is trained on the training split and scored
on the validation split: mIoU (mmseg's ``IoUMetric`` arithmetic) for
segmentation, RMSE for depth, beside the chance score (the most frequent
training class everywhere / the mean training depth everywhere). Prints a
t x tap table and writes
``probe.json`` and ``probe.png`` (matplotlib) to ``--out``.

``--pretrained FOLDER`` loads a diffusers folder (e.g. the one
``configs/pretrain/`` runs export) with ``scale_latents=True``, the latent
scale the U-Net was trained with.

For an ``mmdiff.DiTBackbone`` config (SD3, FLUX, PixArt) the columns are
transformer blocks (``--blocks``, default the config's ``taps``), and
``--backbone null`` keeps the transformer with the null prompt.
"""
import argparse
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

from mmengine.config import Config, DictAction  # noqa: E402

from mmdiff.analysis import probe_features  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='mmseg seg or depth config')
    p.add_argument('--pretrained', help='diffusers folder for the backbone')
    p.add_argument('--timesteps', type=int, nargs='+',
                   default=[1, 50, 100, 200, 400])
    p.add_argument('--taps', type=int, nargs='+', default=None,
                   help='indices of the backbone outputs (default: all)')
    p.add_argument('--blocks', type=int, nargs='+', default=None,
                   help='mmdiff.DiTBackbone configs: the transformer blocks '
                   'swept (its taps; default: the config\'s)')
    p.add_argument('--backbone', choices=['null', 'config'], default='null',
                   help="null: mmdiff.DiffusionBackbone (null prompt, as a "
                   "text-free pretrained U-Net was trained) with the "
                   "config backbone's common arguments; config: as is")
    p.add_argument('--noise', choices=['seeded', 'none'], default='seeded',
                   help='noise at t (seeded: same for every run)')
    p.add_argument('--num-train', type=int, default=64)
    p.add_argument('--num-val', type=int, default=32)
    p.add_argument('--steps', type=int, default=200,
                   help='optimiser steps of each linear head (full batch)')
    p.add_argument('--lr', type=float, default=1e-2)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='work_dirs/probe')
    p.add_argument('--cfg-options', nargs='+', default=[],
                   help='key=value overrides of CONFIG')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        parser = argparse.ArgumentParser()
        parser.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(parser.parse_args(
            ['--o', *args.cfg_options]).o)
    options = {k: v for k, v in vars(args).items() if k != 'cfg_options'}
    return probe_features(cfg, **options)


if __name__ == '__main__':
    main()
