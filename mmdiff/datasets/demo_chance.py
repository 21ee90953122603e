"""Chance levels of the demo data sets, scored by the hosts' own metrics.

A trained demo model is only worth its figures next to what a model that
learnt nothing from the images scores on the same validation split. The
baselines here use the training split's statistics only:

- seg: every pixel predicted as the most frequent training class
  (``background``), scored by mmseg's ``IoUMetric``;
- depth: the per-pixel mean of the training depth maps, and the training
  median as one constant, scored by mmseg's ``DepthMetric`` with the
  evaluator settings of ``docs/demo_data.md``;
- panoptic: one ``background`` stuff segment over the whole image, scored by
  mmdet's ``CocoPanopticMetric`` (PQ, PQ_th, PQ_st).
"""
import glob
import os.path as osp
from typing import Dict, List

import cv2
import numpy as np

from .demo_data import DEMO_DEPTH_SCALE, DEMO_SEG_CLASSES, DEMO_SPLITS


def _read_all(pattern: str) -> List[np.ndarray]:
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise FileNotFoundError(f'no files match {pattern}; make the demo '
                                'data first (tools/misc/make_demo_data.py)')
    return [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths]


def seg_chance(folder: str) -> Dict[str, float]:
    """mIoU etc. of predicting the majority training class everywhere.

    Args:
        folder (str): The seg data set, e.g. ``data/demo/seg``.

    Returns:
        dict: ``IoUMetric`` results (``aAcc``, ``mIoU``, ``mAcc``, in %).
    """
    import torch
    from mmseg.evaluation import IoUMetric
    train, val = DEMO_SPLITS['seg']
    counts = sum(
        np.bincount(m.ravel(), minlength=len(DEMO_SEG_CLASSES))
        for m in _read_all(osp.join(folder, 'annotations', train, '*.png')))
    majority = int(np.argmax(counts[:len(DEMO_SEG_CLASSES)]))
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=DEMO_SEG_CLASSES)
    for gt in _read_all(osp.join(folder, 'annotations', val, '*.png')):
        gt = torch.as_tensor(gt.astype(np.int64))
        metric.process({}, [dict(pred_sem_seg=dict(data=torch.full_like(
            gt, majority)), gt_sem_seg=dict(data=gt))])
    return metric.compute_metrics(metric.results)


def depth_chance(folder: str) -> Dict[str, Dict[str, float]]:
    """Depth metrics of two image-blind predictions.

    Args:
        folder (str): The depth data set, e.g. ``data/demo/depth``.

    Returns:
        dict: ``{'mean_map': ..., 'median': ...}``, each the ``DepthMetric``
        results (``rmse``, ``abs_rel``, ``d1``, ...).
    """
    import torch
    from mmseg.evaluation import DepthMetric
    train, val = DEMO_SPLITS['depth']
    train_maps = np.stack(_read_all(
        osp.join(folder, 'annotations', train, '*.png'))) / DEMO_DEPTH_SCALE
    val_maps = _read_all(osp.join(folder, 'annotations', val, '*.png'))
    preds = dict(mean_map=train_maps.mean(0),
                 median=np.full(train_maps.shape[1:], np.median(train_maps)))
    out = {}
    for name, pred in preds.items():
        metric = DepthMetric(min_depth_eval=1e-3, max_depth_eval=10.0,
                             crop_type=None)
        pred = torch.as_tensor(pred, dtype=torch.float32)
        for gt in val_maps:
            gt = torch.as_tensor(gt / DEMO_DEPTH_SCALE, dtype=torch.float32)
            metric.process({}, [dict(pred_depth_map=dict(data=pred),
                                     gt_depth_map=dict(data=gt))])
        out[name] = metric.compute_metrics(metric.results)
    return out


def panoptic_scores(folder: str, predict) -> Dict[str, float]:
    """Score panoptic predictions of the val split with mmdet's metric.

    Args:
        folder (str): The panoptic data set, e.g. ``data/demo/panoptic``.
        predict (callable): ``predict(gt_ids, segments_info) -> pan``, the
            prediction of one image in mmdet's encoding: (H, W) int64,
            ``label + instance * INSTANCE_OFFSET`` (``label`` in the order of
            ``DEMO_PANOPTIC_CLASSES``, ``len(classes)`` for VOID).

    Returns:
        dict: ``CocoPanopticMetric`` results (``PQ``, ``PQ_th``, ``PQ_st``,
        SQ, RQ, in %).
    """
    import json

    import torch
    from mmdet.evaluation import CocoPanopticMetric

    from .demo_panoptic import (DEMO_PANOPTIC_CLASSES, DEMO_PANOPTIC_STUFF,
                                DEMO_PANOPTIC_THINGS)
    val = DEMO_SPLITS['panoptic'][1]
    ann_file = osp.join(folder, 'annotations', f'panoptic_{val}.json')
    seg_prefix = osp.join(folder, 'annotations', f'panoptic_{val}')
    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'{ann_file} is missing; make the demo data '
                                'first (tools/misc/make_demo_data.py)')
    with open(ann_file) as f:
        coco = json.load(f)
    metric = CocoPanopticMetric(ann_file=ann_file, seg_prefix=seg_prefix)
    metric.dataset_meta = dict(classes=DEMO_PANOPTIC_CLASSES,
                               thing_classes=DEMO_PANOPTIC_THINGS,
                               stuff_classes=DEMO_PANOPTIC_STUFF)
    names = {img['id']: img['file_name'] for img in coco['images']}
    for ann in coco['annotations']:
        png = cv2.imread(osp.join(seg_prefix, ann['file_name']),
                         cv2.IMREAD_COLOR)[..., ::-1].astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 256**2 * png[..., 2]
        pan = predict(ids, ann['segments_info'])
        metric.process({}, [dict(
            img_id=ann['image_id'], img_path=names[ann['image_id']],
            ori_shape=ids.shape,
            pred_panoptic_seg=dict(sem_seg=torch.as_tensor(pan)[None]))])
    return metric.compute_metrics(metric.results)


def panoptic_chance(folder: str) -> Dict[str, float]:
    """PQ of predicting one ``background`` stuff segment over every image.

    Background is the majority class of the training pixels (about 85%),
    so this is the image-blind predictor that scores best on PQ_st; it finds
    no thing (PQ_th 0).

    Args:
        folder (str): The panoptic data set, e.g. ``data/demo/panoptic``.

    Returns:
        dict: ``CocoPanopticMetric`` results (``PQ``, ``PQ_th``, ``PQ_st``,
        ...), in %.
    """
    from .demo_panoptic import DEMO_PANOPTIC_CLASSES
    background = DEMO_PANOPTIC_CLASSES.index('background')
    return panoptic_scores(
        folder, lambda ids, _: np.full(ids.shape, background, np.int64))
