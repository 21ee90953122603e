"""KITTI Garg/Eigen evaluation crops against windows computed by hand.

The windows below are worked out on paper from VPD's
depth/utils_depth/metrics.py::cropping_img (github.com/wl-zhao/VPD @
92095abdad4de7a83bab38248bcab01eb242b1f6) for a 375x1242 KITTI raw frame:

* benchmark window (do_kb_crop): top = 375 - 352 = 23,
  left = (1242 - 1216) // 2 = 13 -> rows 23..374, columns 13..1228;
* Garg inside it: rows int(0.40810811*352)=143 .. int(0.99189189*352)=349,
  columns int(0.03594771*1216)=43 .. int(0.96405229*1216)=1172
  -> frame rows 166..371, columns 56..1184 (206 x 1129 pixels);
* Eigen inside it: rows int(0.3324324*352)=117 .. int(0.91351351*352)=321,
  columns 43 .. 1172 -> frame rows 140..343, columns 56..1184;
* without the benchmark window, Garg on the whole frame: rows
  int(0.40810811*375)=153 .. int(0.99189189*375)=371, columns
  int(0.03594771*1242)=44 .. int(0.96405229*1242)=1197.
"""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings

from mmdiff.evaluation import KITTIDepthMetric, kitti_eval_mask

H, W = 375, 1242
GARG = (166, 372, 56, 1185)  # rows [166, 372), columns [56, 1185)
EIGEN = (140, 344, 56, 1185)
GARG_WHOLE = (153, 371, 44, 1197)


def _box(mask):
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    return (rows.min().item(), rows.max().item() + 1, cols.min().item(),
            cols.max().item() + 1, mask.sum().item())


@pytest.mark.parametrize('crop,kb,box', [('garg_crop', True, GARG),
                                         ('eigen_crop', True, EIGEN),
                                         ('garg_crop', False, GARG_WHOLE)])
def test_window_matches_hand_computed(crop, kb, box):
    gt = torch.full((H, W), 10.0)
    mask = kitti_eval_mask(gt, crop, 1e-3, 80.0, kb_crop=kb)
    top, bottom, left, right = box
    assert _box(mask) == (top, bottom, left, right,
                          (bottom - top) * (right - left))


def _sample(pred, gt):
    return dict(pred_depth_map=dict(data=pred[None]),
                gt_depth_map=dict(data=gt[None]), img_path='x.png')


def test_metric_counts_only_the_garg_crop():
    """A fabricated frame: errors outside the crop, invalid (0 m, >= 80 m)
    pixels inside it and a known error inside it; rmse and abs_rel by hand.
    """
    gt = torch.full((H, W), 10.0)
    pred = torch.full((H, W), 50.0)  # wrong everywhere outside the crop
    top, bottom, left, right = GARG
    pred[top:bottom, left:right] = 10.0
    pred[top:top + 2, left:right] = 11.0  # 2 rows off by 1 m
    gt[bottom - 1, left:left + 29] = 0.0  # no ground truth: not counted
    gt[bottom - 2, left:left + 100] = 85.0  # beyond 80 m: not counted
    metric = KITTIDepthMetric(crop_type='garg_crop')
    metric.process({}, [_sample(pred, gt)])
    result = metric.compute_metrics(metric.results)
    n = (bottom - top) * (right - left) - 29 - 100  # 232,445 pixels
    assert n == 206 * 1129 - 129
    assert result['rmse'] == pytest.approx(
        math.sqrt(2 * 1129 * 1.0 / n), rel=1e-3, abs=1e-4)
    assert result['abs_rel'] == pytest.approx(
        2 * 1129 * (1 / 10) / n, rel=1e-3, abs=1e-4)
    assert result['d1'] == pytest.approx(1.0, abs=1e-4)  # 11/10 < 1.25


def test_bad_crop_name_is_refused():
    with pytest.raises(ValueError, match='garg_crop'):
        KITTIDepthMetric(crop_type='garg')


def test_small_frame_with_kb_crop_is_refused():
    with pytest.raises(ValueError, match='kb_crop=False'):
        kitti_eval_mask(torch.ones(200, 600), 'garg_crop', 1e-3, 80.0)


def test_kitti_config_evaluates_with_garg_crop():
    """The KITTI reference config builds this metric with the Garg crop."""
    import os.path as osp
    from mmseg.registry import METRICS
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(
        osp.join(root, 'configs/vpd/vpd_sd15_4xb8-25k_kitti-352x704.py'))
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope('mmseg')
    metric = METRICS.build(cfg.test_evaluator)
    assert isinstance(metric, KITTIDepthMetric)
    assert (metric.crop_type, metric.kb_crop) == ('garg_crop', True)
    assert (metric.min_depth_eval, metric.max_depth_eval) == (1e-3, 80.0)
