"""The panoptic demo set: the demo scenes in the COCO panoptic format.

Scene ``i`` of a split is the same picture as in the seg / depth / coco demo
sets. Things are the three shapes (category ids 1-3, one segment per
object, ``isthing=1``); the background plane is one stuff segment
(category id 4, ``background``, ``isthing=0``). Every pixel belongs to a
segment, so the VOID id 0 is never written. Layout (mmdet's
``CocoPanopticDataset`` reads it)::

    panoptic/{train,val}/demo_00000.jpg
             annotations/panoptic_{train,val}.json
             annotations/panoptic_{train,val}/demo_00000.png

PNG colours encode segment ids as in the COCO panoptic format:
``id = R + 256 * G + 256 ** 2 * B``.
"""
import os.path as osp
from typing import Dict, List

import numpy as np

from .demo_files import (DEMO_SPLITS, scenes, write_coco_jsons, write_image,
                         write_jpg)
from .demo_scene import SHAPE_CLASSES, as_hw

#: Thing classes (category ids 1-3) then stuff classes (id 4): mmdet's
#: panoptic label order, things first.
DEMO_PANOPTIC_THINGS = SHAPE_CLASSES
DEMO_PANOPTIC_STUFF = ('background', )
DEMO_PANOPTIC_CLASSES = DEMO_PANOPTIC_THINGS + DEMO_PANOPTIC_STUFF
# tuples: mmdet's visualiser refuses list colours
DEMO_PANOPTIC_PALETTE = [(220, 20, 60), (0, 170, 0), (30, 80, 230),
                         (128, 128, 128)]


def panoptic_categories() -> List[Dict]:
    """The ``categories`` of the demo panoptic json."""
    return [
        dict(id=i + 1, name=name, supercategory='shape' if i < len(
            DEMO_PANOPTIC_THINGS) else 'plane',
             isthing=int(i < len(DEMO_PANOPTIC_THINGS)),
             color=list(DEMO_PANOPTIC_PALETTE[i]))
        for i, name in enumerate(DEMO_PANOPTIC_CLASSES)
    ]


def _bbox(mask: np.ndarray) -> List[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
            int(ys.max() - ys.min() + 1)]


def panoptic_of_scene(scene: Dict):
    """Segment id map and ``segments_info`` of one rendered scene.

    Args:
        scene (dict): A :func:`render_scene` result.

    Returns:
        tuple: ``(ids, segments_info)``: ``ids`` (H, W) int64 segment ids
        (1 the background, 2.. the objects in drawing order), and the COCO
        panoptic ``segments_info`` list.
    """
    ids = np.ones(scene['sem_seg'].shape, dtype=np.int64)
    segments = []
    for k, obj in enumerate(scene['objects']):
        ids[obj['mask']] = k + 2
    stuff_id = len(DEMO_PANOPTIC_THINGS) + 1
    labels = [stuff_id] + [o['label'] + 1 for o in scene['objects']]
    for seg_id, category_id in enumerate(labels, start=1):
        mask = ids == seg_id
        if not mask.any():  # cannot happen (objects never overlap)
            continue
        segments.append(dict(id=seg_id, category_id=category_id, iscrowd=0,
                             bbox=_bbox(mask), area=int(mask.sum())))
    return ids, segments


def id2rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids (H, W) to the COCO panoptic RGB encoding (H, W, 3)."""
    return np.stack([(ids // 256**c) % 256 for c in range(3)],
                    axis=-1).astype(np.uint8)


def make_demo_panoptic(root: str, num_train: int = 64, num_val: int = 16,
                       size=96, seed: int = 0) -> str:
    """Write the panoptic demo set (COCO panoptic format) under ``root``.

    Args:
        root (str): Output folder (created if missing).
        num_train (int): Images in ``train``. Defaults to 64.
        num_val (int): Images in ``val``. Defaults to 16.
        size (int | tuple[int, int]): Image size. Defaults to 96.
        seed (int): Seed of the scenes. Defaults to 0.

    Returns:
        str: ``root``.
    """
    h, w = as_hw(size)
    splits = [dict(images=[], annotations=[]) for _ in range(2)]
    for split, i, scene in scenes(num_train, num_val, size, seed):
        name = DEMO_SPLITS['panoptic'][split]
        stem = f'demo_{i:05d}'
        write_jpg(osp.join(root, name, stem + '.jpg'), scene['img'])
        ids, segments = panoptic_of_scene(scene)
        # OpenCV writes BGR: reverse the RGB encoding's channels.
        write_image(osp.join(root, 'annotations', f'panoptic_{name}',
                        stem + '.png'), id2rgb(ids)[..., ::-1], '.png')
        splits[split]['images'].append(
            dict(id=i + 1, file_name=stem + '.jpg', height=h, width=w))
        splits[split]['annotations'].append(
            dict(image_id=i + 1, file_name=stem + '.png',
                 segments_info=segments))
    write_coco_jsons(root, 'panoptic', splits, panoptic_categories(),
                     'mmdiff demo shapes, panoptic')
    return root
