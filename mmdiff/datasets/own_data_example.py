"""The demo scenes laid out as a user's own data, for the own-data configs.

``configs/custom/*_my-*.py`` read the layouts users bring (image + mask
folders, a COCO json); this writes the seg and COCO demo scenes in exactly
those layouts, so the own-data flow runs offline in minutes before any real
data or SD weights are fetched:

    ROOT/my_seg/images/{train,val}/NAME.jpg
    ROOT/my_seg/masks/{train,val}/NAME.png
    ROOT/my_coco/images/{train,val}/NAME.jpg
    ROOT/my_coco/annotations/{train,val}.json
"""
import os
import os.path as osp
import shutil
from typing import Dict

from mmdiff.utils.fileio import publish_folder
from .demo_data import ensure_demo_data

#: (demo folder, own-data folder) of each task, relative to their roots
OWN_LAYOUTS = {
    'seg': (('images/training', 'images/train'),
            ('images/validation', 'images/val'),
            ('annotations/training', 'masks/train'),
            ('annotations/validation', 'masks/val')),
    'coco': (('train', 'images/train'), ('val', 'images/val'),
             ('annotations/instances_train.json', 'annotations/train.json'),
             ('annotations/instances_val.json', 'annotations/val.json')),
}
OWN_NAMES = {'seg': 'my_seg', 'coco': 'my_coco'}


def _copy_layout(src_root: str, pairs, dst_root: str) -> None:
    for src, dst in pairs:
        src, dst = osp.join(src_root, src), osp.join(dst_root, dst)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        if osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def write_own_data_example(root: str = 'data', demo_root: str = 'data/demo',
                           num_train: int = 64, num_val: int = 16,
                           size: int = 128, seed: int = 0,
                           force: bool = False) -> Dict[str, str]:
    """Write ``root/my_seg`` and ``root/my_coco`` from the demo scenes.

    The demo sets are made first if missing (:func:`ensure_demo_data`).
    Each folder appears complete or not at all (:func:`publish_folder`);
    an existing one is kept unless ``force``.

    Args:
        root (str): Parent of ``my_seg`` and ``my_coco``. Defaults to 'data'.
        demo_root (str): Where the demo sets are (or are made). Defaults to
            'data/demo'.
        num_train (int): Training scenes. Defaults to 64.
        num_val (int): Validation scenes. Defaults to 16.
        size (int): Scene size. Defaults to 128 (the demo configs').
        seed (int): Seed of the scenes. Defaults to 0.
        force (bool): Rewrite existing folders. Defaults to False.

    Returns:
        dict[str, str]: Task ('seg', 'coco') -> the folder written or kept.
    """
    out = {}
    for task, pairs in OWN_LAYOUTS.items():
        target = osp.join(root, OWN_NAMES[task])
        out[task] = target
        if osp.isdir(target) and os.listdir(target) and not force:
            continue
        demo = ensure_demo_data(task, root=demo_root, num_train=num_train,
                                num_val=num_val, size=size, seed=seed)
        publish_folder(
            target, lambda tmp, demo=demo, pairs=pairs: _copy_layout(
                demo, pairs, tmp),
            replace=force, action=f'writing the own-data example {target}')
    return out
