"""Surface-normal evaluation: angular error, as the sources report it.

Lotus (EnVision-Research/Lotus@b737e12238d2a41fc582ee8c6c6b1104d318d799,
``evaluation/util/normal_utils.py`` and ``evaluation/evaluation.py``), like
DSINE and Marigold's normals evaluation before it, measures the angle
between the predicted and the ground-truth normal of every valid pixel in
degrees, pools the pixels of the whole test set, and reports the mean,
median and root-mean-square angle and the percentage of pixels whose angle
is below 5, 7.5, 11.25, 22.5 and 30 degrees (strictly below). This module
re-implements that convention for mmseg's evaluator; no code was copied.
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS
from torch import Tensor

THRESHOLDS = (5., 7.5, 11.25, 22.5, 30.)


def normal_angles(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-pixel angle in degrees between two normal maps ``(3, ...)``.

    Neither map needs unit length (the cosine similarity normalises); the
    cosine is clamped to [-1, 1] before ``acos``.
    """
    if pred.shape != gt.shape or pred.shape[0] != 3:
        raise ValueError('normal maps must both have the shape (3, H, W); '
                         f'got {tuple(pred.shape)} and {tuple(gt.shape)}.')
    cos = torch.cosine_similarity(pred.double(), gt.double(), dim=0)
    return torch.rad2deg(torch.acos(cos.clamp(-1., 1.)))


def normal_metrics(angles: Tensor,
                   thresholds: Sequence[float] = THRESHOLDS
                   ) -> Dict[str, float]:
    """Summary of pooled per-pixel angles (degrees, 1-D).

    Returns:
        dict: ``mean``, ``median``, ``rmse`` (degrees) and ``a<threshold>``
        (percentage of angles strictly below the threshold, e.g.
        ``a11.25``).
    """
    if angles.numel() == 0:
        raise ValueError('no valid normal pixel to evaluate: the ground '
                         'truth has no pixel of non-zero length.')
    angles = angles.double().flatten()
    out = dict(mean=angles.mean().item(),
               # the sources take numpy's median (the mean of the two middle
               # values for an even count), not torch's lower median
               median=float(torch.quantile(angles, 0.5).item()),
               rmse=math.sqrt((angles**2).mean().item()))
    for t in thresholds:
        out[f'a{t:g}'] = 100. * (angles < t).double().mean().item()
    return out


@METRICS.register_module()
class NormalAngleMetric(BaseMetric):
    """Angular error of predicted surface normals (mmseg evaluator).

    Reads ``pred_normal_map`` (what ``mmdiff.GenerativeDepth`` with
    ``target='normal'`` writes) and ``gt_normal_map`` of each data sample,
    both ``(3, H, W)``; a ground-truth pixel counts when its normal has
    length above ``min_norm`` (zero vectors mark missing normals). The
    angles of all counted pixels of all images are pooled, as in the
    sources. Data without ground-truth normals can be scored against the
    normals of its ground-truth depth (``gt_from_depth=True``: pinhole
    camera, ``focal`` in pixels, as the model's ``target='normal'`` training
    derives them; pixels whose 3x3 neighbourhood has valid depth count).

    Args:
        min_norm (float): Ground-truth pixels with a shorter normal are
            ignored. Defaults to 0.5.
        gt_from_depth (bool): Use the normals of ``gt_depth_map`` when a
            sample has no ``gt_normal_map``. Defaults to False.
        focal (float, optional): Focal length (pixels) for
            ``gt_from_depth``; None: the image width. Defaults to None.
        min_depth (float): Depth at or below is invalid
            (``gt_from_depth``). Defaults to 1e-3.
        thresholds (Sequence[float]): Angles (degrees) of the
            percentage-below metrics. Defaults to (5, 7.5, 11.25, 22.5, 30).
        collect_device, prefix: As mmengine's ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(self, min_norm: float = 0.5,
                 thresholds: Sequence[float] = THRESHOLDS,
                 gt_from_depth: bool = False,
                 focal: Optional[float] = None,
                 min_depth: float = 1e-3,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.min_norm = min_norm
        self.thresholds = tuple(thresholds)
        self.gt_from_depth = gt_from_depth
        self.focal = focal
        self.min_depth = min_depth

    def _gt(self, sample: dict) -> tuple:
        """Ground-truth normals ``(3, H, W)`` and their valid mask."""
        if 'gt_normal_map' in sample:
            gt = sample['gt_normal_map']['data'].double()
            return gt, gt.norm(dim=0) > self.min_norm
        if not (self.gt_from_depth and 'gt_depth_map' in sample):
            raise KeyError(
                'NormalAngleMetric needs gt_normal_map in the data samples: '
                'load ground-truth normals in the evaluation pipeline, or '
                'set gt_from_depth=True to score against the normals of the '
                'ground-truth depth.')
        from .targets import depth_to_normals
        depth = sample['gt_depth_map']['data'].double()[None]
        valid = depth > self.min_depth
        # a normal needs its neighbours' depths too (central differences;
        # at the image border depth_to_normals replicates the edge)
        valid = -torch.nn.functional.max_pool2d(
            -valid.double(), 3, 1, 1) > 0.5
        return depth_to_normals(depth, self.focal)[0], valid[0, 0]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Angles of the valid pixels of each sample (kept as one tensor)."""
        for sample in data_samples:
            if 'pred_normal_map' not in sample:
                raise KeyError(
                    'NormalAngleMetric reads pred_normal_map: the model must '
                    "predict normals (GenerativeDepth: target='normal').")
            gt, valid = self._gt(sample)
            pred = sample['pred_normal_map']['data'].to(gt.device)
            self.results.append(normal_angles(pred, gt)[valid].cpu())

    def compute_metrics(self, results: List[Tensor]) -> Dict[str, float]:
        """Pooled mean/median/rmse angle and the percentages below."""
        return normal_metrics(torch.cat([r.flatten() for r in results]),
                              self.thresholds)
