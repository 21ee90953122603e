"""Files of the demo sets: the seeded scenes of each split, image and COCO
json writers, and the split folder names (shared by :mod:`.demo_data` and
:mod:`.demo_panoptic`)."""
import os
import os.path as osp
from typing import List, Sequence, Union

import cv2
import numpy as np

from mmdiff.utils.fileio import atomic_write_json
from .demo_scene import render_scene

#: Split folder names per task, (train, val).
DEMO_SPLITS = dict(
    seg=('training', 'validation'), depth=('train', 'test'),
    coco=('train', 'val'), coco_small=('train', 'val'),
    panoptic=('train', 'val'))

SizeType = Union[int, Sequence[int]]


def scene_rng(seed: int, split: int, index: int) -> np.random.Generator:
    """The generator of scene ``index`` of ``split`` (0 train, 1 val)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    return np.random.default_rng([int(seed), split, index])


def scenes(num_train: int, num_val: int, size: SizeType, seed: int,
           **style):
    """Yield ``(split_index, image_index, scene)`` for both splits
    (``style``: further :func:`render_scene` arguments)."""
    for split, num in enumerate((num_train, num_val)):
        if num < 0:
            raise ValueError(f'image counts must be >= 0, got {num}')
        for i in range(num):
            yield split, i, render_scene(scene_rng(seed, split, i), size,
                                         **style)


def write_image(path: str, array: np.ndarray, ext: str, params=()) -> None:
    """Encode ``array`` as ``ext`` with OpenCV and write it to ``path``."""
    ok, buf = cv2.imencode(ext, array, list(params))
    if not ok:
        raise OSError(f'OpenCV could not encode {path}')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def write_jpg(path: str, rgb: np.ndarray) -> None:
    """An RGB image as a quality-90 JPEG."""
    write_image(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), '.jpg',
                (cv2.IMWRITE_JPEG_QUALITY, 90))


def write_coco_jsons(root: str, task: str, splits: Sequence[dict],
                     categories: List[dict], description: str) -> None:
    """Complete the two COCO dicts of ``splits`` (train, val) and write them
    as ``annotations/<instances|panoptic>_<split>.json``."""
    prefix = 'panoptic' if task == 'panoptic' else 'instances'
    for split, coco in enumerate(splits):
        name = DEMO_SPLITS[task][split]
        coco.update(
            info=dict(description=description, version='1.0', year=2026),
            licenses=[], categories=categories)
        atomic_write_json(
            osp.join(root, 'annotations', f'{prefix}_{name}.json'), coco,
            separators=(',', ':'))
