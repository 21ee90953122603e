"""Offline demo data sets in the on-disk formats the host data sets read.

Three small data sets are rendered from the same procedural scenes
(:func:`mmdiff.datasets.demo_scene.render_scene`): scene ``i`` of a split is
drawn from ``np.random.default_rng([seed, split, i])``, so the seg, depth and
coco data sets show the same pictures, and growing ``num_train`` keeps the
images already there. Layouts (``root`` is usually ``data/demo/<task>``)::

    seg/    images/{training,validation}/demo_00000.jpg     ADE20K layout
            annotations/{training,validation}/demo_00000.png  uint8 labels
    depth/  images/{train,test}/<scene>_00000.jpg            NYU layout
            annotations/{train,test}/<scene>_00000.png        uint16, mm
    coco/   {train,val}/demo_00000.jpg
            annotations/instances_{train,val}.json            COCO, polygons
    coco_small/                                                the same layout
    panoptic/ {train,val}/demo_00000.jpg                      COCO panoptic
            annotations/panoptic_{train,val}.json, panoptic_{train,val}/*.png

Segmentation labels are ``0..3`` = :data:`DEMO_SEG_CLASSES` (``background``
is a real class; ``reduce_zero_label=False``; 255 is left as the ignore
index and never written). Depth is in millimetres (divide by
:data:`DEMO_DEPTH_SCALE`), every pixel valid and inside
``demo_scene.DEPTH_RANGE``. COCO category ids are ``1..3`` in the order of
:data:`DEMO_DET_CLASSES`. ``demo_meta.json`` in each folder records the
parameters the data was made with and the sha256 of every file.

``coco_small`` is the small-object variant of ``coco``: scenes of the same
generator and seeds drawn with :data:`SCENE_STYLES` (objects at 0.4x their
size, up to 12 a scene), all of them COCO-small (area < 32^2) at 128 px.
"""
import json
import os
import os.path as osp
from functools import partial
from typing import Callable, Dict, Optional

import numpy as np

from mmdiff.utils.fileio import (atomic_write_json, folder_lock,
                                 publish_folder, sha256_tree)
from .demo_files import (DEMO_SPLITS, SizeType, scenes, write_coco_jsons,
                         write_image, write_jpg)
from .demo_panoptic import make_demo_panoptic
from .demo_scene import SCENE_NAMES, SHAPE_CLASSES, as_hw

DEMO_TASKS = ('seg', 'depth', 'coco', 'coco_small', 'panoptic')
DEMO_SEG_CLASSES = ('background', ) + SHAPE_CLASSES
# Colours as tuples: mmdet's visualizer takes a list of (r, g, b) tuples and
# reads a list of lists as one colour per box (TypeError on int).
DEMO_SEG_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 170, 0), (30, 80, 230)]
DEMO_DET_CLASSES = SHAPE_CLASSES
DEMO_DET_PALETTE = DEMO_SEG_PALETTE[1:]
#: Depth pngs store millimetres: ``metres = png / DEMO_DEPTH_SCALE``.
DEMO_DEPTH_SCALE = 1000
#: ``render_scene`` arguments of the tasks whose scenes differ from the
#: default ones (same random draws, other object sizes / counts).
SCENE_STYLES = dict(coco_small=dict(object_scale=0.4, max_objects=12))
FORMAT_VERSION = 1
META_FILE = 'demo_meta.json'

def make_demo_seg(root: str, num_train: int = 64, num_val: int = 16,
                  size: SizeType = 96, seed: int = 0) -> str:
    """Write the segmentation demo set (ADE20K layout) under ``root``.

    Args:
        root (str): Output folder (created if missing).
        num_train (int): Images in ``training``. Defaults to 64.
        num_val (int): Images in ``validation``. Defaults to 16.
        size (int | tuple[int, int]): Image size. Defaults to 96.
        seed (int): Seed of the scenes. Defaults to 0.

    Returns:
        str: ``root``.
    """
    for split, i, scene in scenes(num_train, num_val, size, seed):
        name = DEMO_SPLITS['seg'][split]
        write_jpg(osp.join(root, 'images', name, f'demo_{i:05d}.jpg'),
                  scene['img'])
        write_image(
            osp.join(root, 'annotations', name, f'demo_{i:05d}.png'),
            scene['sem_seg'], '.png')
    return root


def make_demo_depth(root: str, num_train: int = 64, num_val: int = 16,
                    size: SizeType = 96, seed: int = 0) -> str:
    """Write the depth demo set (mmseg ``NYUDataset`` layout) under ``root``.

    File names are ``<scene>_<index>.jpg`` with ``<scene>`` one of
    ``demo_scene.SCENE_NAMES``, NYU scene categories, which
    ``NYUDataset`` parses into ``category_id``. Depth pngs are uint16
    millimetres (``depth_rescale_factor=1e-3`` gives metres).

    Args:
        root (str): Output folder (created if missing).
        num_train (int): Images in ``train``. Defaults to 64.
        num_val (int): Images in ``test``. Defaults to 16.
        size (int | tuple[int, int]): Image size. Defaults to 96.
        seed (int): Seed of the scenes. Defaults to 0.

    Returns:
        str: ``root``.
    """
    for split, i, scene in scenes(num_train, num_val, size, seed):
        name = DEMO_SPLITS['depth'][split]
        stem = f'{SCENE_NAMES[scene["scene"]]}_{i:05d}'
        write_jpg(osp.join(root, 'images', name, stem + '.jpg'),
                  scene['img'])
        depth_mm = np.round(scene['depth'] * DEMO_DEPTH_SCALE)
        write_image(osp.join(root, 'annotations', name, stem + '.png'),
                    depth_mm.astype(np.uint16), '.png')
    return root


def _coco_annotation(obj: Dict, ann_id: int, image_id: int) -> Dict:
    # COCO pixel (i, j) covers [j, j + 1) x [i, i + 1); OpenCV puts its
    # centre at (j, i): shift by half a pixel.
    poly = obj['polygon'] + 0.5
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) -
                     np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
    return dict(
        id=ann_id, image_id=image_id, category_id=obj['label'] + 1,
        bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        area=round(float(area), 2), iscrowd=0,
        segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]])


def make_demo_coco(root: str, num_train: int = 64, num_val: int = 16,
                   size: SizeType = 96, seed: int = 0,
                   task: str = 'coco') -> str:
    """Write the detection / instance demo set (COCO format) under ``root``.

    Every object has a ``bbox`` (x, y, w, h), its polygon ``area``,
    ``iscrowd=0`` and one polygon in ``segmentation``; every image has at
    least one object.

    Args:
        root (str): Output folder (created if missing).
        num_train (int): Images in ``train``. Defaults to 64.
        num_val (int): Images in ``val``. Defaults to 16.
        size (int | tuple[int, int]): Image size. Defaults to 96.
        seed (int): Seed of the scenes. Defaults to 0.
        task (str): ``'coco'`` or ``'coco_small'`` (the scenes of
            :data:`SCENE_STYLES`). Defaults to 'coco'.

    Returns:
        str: ``root``.
    """
    h, w = as_hw(size)
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(DEMO_DET_CLASSES)]
    splits = [dict(images=[], annotations=[]) for _ in range(2)]
    for split, i, scene in scenes(num_train, num_val, size, seed,
                                  **SCENE_STYLES.get(task, {})):
        name = DEMO_SPLITS[task][split]
        file_name = f'demo_{i:05d}.jpg'
        write_jpg(osp.join(root, name, file_name), scene['img'])
        coco = splits[split]
        image_id = i + 1
        coco['images'].append(
            dict(id=image_id, file_name=file_name, height=h, width=w))
        for obj in scene['objects']:
            coco['annotations'].append(_coco_annotation(
                obj, len(coco['annotations']) + 1, image_id))
    write_coco_jsons(root, task, splits, categories, 'mmdiff demo shapes')
    return root


DEMO_MAKERS: Dict[str, Callable[..., str]] = dict(
    seg=make_demo_seg, depth=make_demo_depth, coco=make_demo_coco,
    coco_small=partial(make_demo_coco, task='coco_small'),
    panoptic=make_demo_panoptic)


def _read_meta(folder: str):
    try:
        with open(osp.join(folder, META_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def expected_file_count(task: str, num_train: int, num_val: int) -> int:
    """Files of a complete set, ``demo_meta.json`` not counted."""
    images = num_train + num_val
    if task in ('coco', 'coco_small'):  # images + the two COCO jsons
        return images + 2
    if task == 'panoptic':  # images + panoptic PNGs + the two jsons
        return 2 * images + 2
    return 2 * images  # images + label / depth PNGs


def _checksums(folder: str) -> Dict[str, str]:
    """``{relative path: sha256}`` of every file but the meta file."""
    return sha256_tree(folder, exclude=(META_FILE, ))


def _incomplete(folder: str, task: str, meta: dict) -> Optional[str]:
    """Why the set in ``folder`` is not the complete one ``meta`` lists."""
    found = _checksums(folder)
    want = meta.get('files')
    count = expected_file_count(task, meta['num_train'], meta['num_val'])
    if want is None:  # written before checksums were recorded
        data = [rel for rel in found if '/' in rel]  # not top-level extras
        return None if len(data) == count else (
            f'{len(data)} data files instead of {count}')
    # files added later (e.g. the CaptionPrompts project's captions.json)
    # are not part of the set and not checked
    missing = sorted(set(want) - set(found))
    changed = sorted(k for k in want if k in found and found[k] != want[k])
    if len(want) != count or missing or changed:
        return (f'{len(want)} files listed, {count} expected; missing '
                f'{missing[:3]} ({len(missing)}), changed {changed[:3]} '
                f'({len(changed)})')
    return None


def ensure_demo_data(task: str, root: str = 'data/demo', num_train: int = 64,
                     num_val: int = 16, size: SizeType = 96, seed: int = 0,
                     force: bool = False) -> str:
    """Make the demo data set of ``task`` under ``root/task`` if missing.

    Idempotent: when ``root/task`` already holds the complete data made with
    the same parameters nothing is written. Safe with concurrent writers
    (other processes, containers or nodes sharing the folder): everything
    happens under a lock file ``root/.task.lock`` (``filelock``, fcntl on
    POSIX), so the second writer waits and then finds the first one's data.
    Atomic: the data is written into a hidden temp folder beside it and moved
    into place with ``os.replace``. Verified: ``demo_meta.json`` lists every
    file with its sha256, and each call checks the count and the checksums.

    Args:
        task (str): One of :data:`DEMO_TASKS` ('seg', 'depth', 'coco',
            'coco_small', 'panoptic').
        root (str): Parent folder. Defaults to 'data/demo'.
        num_train (int): Training images. Defaults to 64.
        num_val (int): Validation / test images. Defaults to 16.
        size (int | tuple[int, int]): Image size. Defaults to 96.
        seed (int): Seed of the scenes. Defaults to 0.
        force (bool): Rewrite even if the data exists. Defaults to False.

    Returns:
        str: The data set folder, ``root/task``.

    Raises:
        ValueError: If ``root/task`` exists but was made with other
            parameters (or not by this function), or is incomplete or
            modified, and ``force`` is False.
    """
    if task not in DEMO_MAKERS:
        raise ValueError(f'task must be one of {DEMO_TASKS}, got {task!r}')
    target = osp.join(root, task)
    meta = dict(task=task, format_version=FORMAT_VERSION, seed=seed,
                size=list(as_hw(size)), num_train=num_train, num_val=num_val)
    os.makedirs(root, exist_ok=True)
    with folder_lock(target):
        if osp.exists(target) and not force:
            found = _read_meta(target)
            params = {k: found.get(k) for k in meta} if found else None
            if params != meta:
                raise ValueError(
                    f'{target} exists but holds '
                    f'{params or "no demo_meta.json"}, not {meta}; delete it '
                    'or pass force=True (--force) to rewrite it')
            why = _incomplete(target, task, found)
            if why:
                raise ValueError(
                    f'{target} is incomplete or modified ({why}). Fix: '
                    'delete it to have it made again, or pass force=True '
                    '(--force).')
            if 'files' not in found:  # record checksums of an older set
                atomic_write_json(osp.join(target, META_FILE),
                                  dict(found, files=_checksums(target)),
                                  indent=1)
            return target

        def fill(tmp: str) -> None:
            DEMO_MAKERS[task](tmp, num_train, num_val, size, seed)
            atomic_write_json(osp.join(tmp, META_FILE),
                              dict(meta, files=_checksums(tmp)), indent=1)

        publish_folder(target, fill, replace=True,
                       action=f'writing the demo {task} data')
    return target
