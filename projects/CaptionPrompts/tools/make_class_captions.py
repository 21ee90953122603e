"""Write class-name captions, a baseline caption file for CaptionVPD.

For every image of the config's data sets, the caption names the classes
present in its segmentation map: "a photo of a cat, a dog and a car."
(background / ignored labels left out; "a photo." when none is present).
Real captions (from a captioning model or people) go in the same json
format, {"<folder>/<file name>" or file name: caption}.

    python projects/CaptionPrompts/tools/make_class_captions.py CONFIG \
        --out data/demo/seg/captions.json [--splits train val] \
        [--exclude background] [--cfg-options KEY=VALUE ...]
"""
import argparse
import os.path as osp
import sys

import numpy as np
from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if osp.isfile(osp.join(ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, ROOT)


def class_caption(names, template='a photo of {}.') -> str:
    """"a photo of a cat, a dog and a car." for ``['cat', 'dog', 'car']``."""
    if not names:
        return 'a photo.'
    items = [f'a {n.replace("_", " ")}' for n in names]
    text = items[0] if len(items) == 1 else (
        ', '.join(items[:-1]) + ' and ' + items[-1])
    return template.format(text)


def captions_of_dataset(dataset, exclude=('background', )) -> dict:
    """``{file name: caption}`` from the seg maps of an mmseg dataset."""
    from PIL import Image
    classes = dataset.metainfo['classes']
    out = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        seg = np.array(Image.open(info['seg_map_path']))
        if info.get('reduce_zero_label'):
            seg = seg.astype(np.int64) - 1
        present = [classes[c] for c in np.unique(seg)
                   if 0 <= c < len(classes) and classes[c] not in exclude]
        path = info['img_path']  # key: <folder>/<file name>
        key = f'{osp.basename(osp.dirname(path))}/{osp.basename(path)}'
        out[key] = class_caption(present)
    return out


def main() -> None:
    from mmdiff.utils.fileio import atomic_write_json
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--out', required=True)
    parser.add_argument('--splits', nargs='+', default=['train', 'val'],
                        choices=['train', 'val', 'test'])
    parser.add_argument('--exclude', nargs='*', default=['background'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, as tools/train.py')
    args = parser.parse_args()
    from mmengine.config import Config
    from mmengine.registry import DATASETS, DefaultScope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'custom_imports' in cfg:
        import_modules_from_strings(**cfg.custom_imports)
    import mmseg.datasets  # noqa: F401  (registers mmseg's data sets)
    captions = {}
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope',
                                                      'mmseg')):
        for split in args.splits:
            loader = cfg.get(f'{split}_dataloader')
            if not loader:
                continue
            ds_cfg = dict(loader['dataset'], pipeline=[], lazy_init=False)
            captions.update(captions_of_dataset(DATASETS.build(ds_cfg),
                                                tuple(args.exclude)))
    atomic_write_json(args.out, captions, indent=1, sort_keys=True)
    print(f'{len(captions)} captions -> {args.out}')


if __name__ == '__main__':
    main()
