"""Evaluation metrics registered in the host libraries' ``METRICS``
(imported by the configs that use them through ``custom_imports``)."""
from .kitti_depth_metric import KITTI_CROPS, KITTIDepthMetric, kitti_eval_mask

__all__ = ['KITTI_CROPS', 'KITTIDepthMetric', 'kitti_eval_mask']
