"""The panoptic demo set and its PQ, scored by mmdet's CocoPanopticMetric.

The PQ checks are computed by hand from the written PNGs, so they also
test the ``panopticapi`` the metric imports (panopticapi-lite, see
requirements/runtime-nodeps.txt) on known answers.
"""
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmdiff.datasets import ensure_demo_data, panoptic_chance
from mmdiff.datasets.demo_chance import panoptic_scores
from mmdiff.datasets.demo_files import scene_rng
from mmdiff.datasets.demo_panoptic import DEMO_PANOPTIC_CLASSES
from mmdiff.datasets.demo_scene import render_scene

SIZE, NUM_TRAIN, NUM_VAL = 48, 4, 6
INSTANCE_OFFSET = 1000  # mmdet.evaluation.functional.INSTANCE_OFFSET


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    return ensure_demo_data('panoptic', root, NUM_TRAIN, NUM_VAL, SIZE)


def _read_ids(path):
    png = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1].astype(np.int64)
    return png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]


def _val(folder):
    with open(osp.join(folder, 'annotations', 'panoptic_val.json')) as f:
        coco = json.load(f)
    return coco, [
        _read_ids(osp.join(folder, 'annotations', 'panoptic_val',
                           a['file_name'])) for a in coco['annotations']
    ]


def test_segments_are_the_scene(folder):
    """Every pixel in one segment; segments = the scene's objects + plane."""
    coco, maps = _val(folder)
    cats = {c['id']: c for c in coco['categories']}
    assert [cats[i]['name'] for i in sorted(cats)] == list(
        DEMO_PANOPTIC_CLASSES)
    assert [cats[i]['isthing'] for i in sorted(cats)] == [1, 1, 1, 0]
    for i, (ann, ids) in enumerate(zip(coco['annotations'], maps)):
        scene = render_scene(scene_rng(0, 1, i), SIZE)
        assert osp.isfile(osp.join(folder, 'val', f'demo_{i:05d}.jpg'))
        seen = np.zeros(ids.shape, dtype=int)
        for seg in ann['segments_info']:
            mask = ids == seg['id']
            assert mask.sum() == seg['area'] > 0
            seen += mask
            # the category is the seg demo's label (stuff where it is 0)
            sem = np.unique(scene['sem_seg'][mask])
            assert len(sem) == 1
            assert seg['category_id'] == (sem[0] if sem[0] else 4)
            x, y, w, h = seg['bbox']
            assert mask[y:y + h, x:x + w].sum() == seg['area']
        assert (seen == 1).all()
        assert len(ann['segments_info']) == len(scene['objects']) + 1


def _from_gt(ids, segments, relabel=lambda label, thing: label):
    """The ground truth in mmdet's prediction encoding (labels 0-based)."""
    pan = np.full(ids.shape, len(DEMO_PANOPTIC_CLASSES), np.int64)
    for k, seg in enumerate(segments):
        label = seg['category_id'] - 1
        thing = label < 3
        pan[ids == seg['id']] = relabel(label, thing) + (
            (k + 1) * INSTANCE_OFFSET if thing else 0)
    return pan


def test_pq_of_known_predictions(folder):
    coco, maps = _val(folder)
    # the ground truth itself: PQ 100 everywhere
    res = panoptic_scores(folder, _from_gt)
    for key in ('PQ', 'PQ_th', 'PQ_st', 'SQ', 'RQ'):
        assert res[key] == pytest.approx(100.0), (key, res)
    # things right but one class off (circle->square->triangle->circle):
    # every thing is a false positive and a false negative, stuff exact
    res = panoptic_scores(folder, lambda ids, segs: _from_gt(
        ids, segs, lambda label, thing: (label + 1) % 3 if thing else label))
    assert res['PQ_th'] == pytest.approx(0.0)
    assert res['PQ_st'] == pytest.approx(100.0)
    assert res['PQ'] == pytest.approx(25.0)  # 1 of 4 classes
    # one background segment: by hand, IoU = background share (> 0.5)
    bg = [sum(s['area'] for s in a['segments_info'] if s['category_id'] == 4)
          for a in coco['annotations']]
    total = sum(ids.size for ids in maps)
    iou_sum = sum(b / ids.size for b, ids in zip(bg, maps))
    res = panoptic_chance(folder)
    assert min(b / ids.size for b, ids in zip(bg, maps)) > 0.5
    assert res['PQ_st'] == pytest.approx(100 * iou_sum / len(maps))
    assert res['PQ_th'] == 0.0
    present = {s['category_id'] for a in coco['annotations']
               for s in a['segments_info']}
    assert res['PQ'] == pytest.approx(res['PQ_st'] / len(present))
    assert total > 0
