"""Chance levels of the demo data sets, scored by the hosts' own metrics.

A trained demo model is only worth its figures next to what a model that
learnt nothing from the images scores on the same validation split. The
baselines here use the training split's statistics only:

- seg: every pixel predicted as the most frequent training class
  (``background``), scored by mmseg's ``IoUMetric``;
- depth: the per-pixel mean of the training depth maps, and the training
  median as one constant, scored by mmseg's ``DepthMetric`` with the
  evaluator settings of ``docs/demo_data.md``.
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
