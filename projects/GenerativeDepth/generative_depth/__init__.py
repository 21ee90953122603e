"""One-step generative dense prediction (Lotus / GenPercept / Marigold)."""
from .model import GenerativeDepth
from .targets import align_affine, depth_to_normals, normalize_depth

__all__ = ['GenerativeDepth', 'align_affine', 'depth_to_normals',
           'normalize_depth']
