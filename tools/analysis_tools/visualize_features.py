"""Look at what a diffusion backbone sees: feature taps and attention maps.

    python tools/analysis_tools/visualize_features.py CONFIG CHECKPOINT IMAGE \
        --out DIR [--topk 4] [--cfg-options k=v ...]

Writes into DIR (``H x W`` = the input image's size):

* ``tap{i}_stride{s}_pca.png``: each feature tap of the backbone, its first
  three principal components (over the pixels of this image) as RGB, resized
  to ``H x W``;
* ``attn_{rank}_{class}.png``: for the ``--topk`` classes with the most
  cross-attention mass, the class prompt's attention map (averaged over the
  taps that carry maps, i.e. the 1/16 and 1/32 taps with ``use_attn=True``)
  as a heat map over the image;
* ``summary.png``: the image, the taps and the maps in one labelled grid.

Works with any mmseg/mmdet config whose backbone is ``mmdiff.VPD`` /
``mmdiff.DiffusionBackbone``: the maps are the last K channels of the taps at
the attention resolutions (``backbone.tap_channels`` gives the feature part).
"""
import argparse
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.config import Config, DictAction

from mmdiff.analysis import build_model, class_names, load_image, visualize


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='PNG views of the feature taps (PCA) and per-class '
        'cross-attention maps of a diffusion backbone')
    parser.add_argument('config', help='mmseg/mmdet config file')
    parser.add_argument('checkpoint', help='checkpoint of that config')
    parser.add_argument('image', help='image file')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--topk', type=int, default=4,
                        help='classes shown, by attention mass')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, str]:
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file {args.config!r} does not '
                                'exist.')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    img = load_image(args.image)
    model, meta = build_model(cfg, args.checkpoint, args.device)
    num = getattr(model.backbone, 'num_tokens', 0)
    written = visualize(model, img, class_names(cfg, meta, num), args.out,
                        args.topk, args.device)
    for caption, path in written.items():
        print(f'{caption}: {path}')
    return written


if __name__ == '__main__':
    main()
