"""One-step generative dense prediction (Lotus / GenPercept / Marigold)."""
from .model import GenerativeDepth
from .normal_metric import NormalAngleMetric, normal_angles, normal_metrics
from .targets import align_affine, depth_to_normals, normalize_depth

__all__ = ['GenerativeDepth', 'NormalAngleMetric', 'normal_angles',
           'normal_metrics', 'align_affine', 'depth_to_normals',
           'normalize_depth']
