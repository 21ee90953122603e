"""mmseg's ``DepthMetric`` with the KITTI evaluation crops.

mmseg 1.2's ``DepthMetric`` knows only ``crop_type='nyu_crop'``. Published
KITTI (Eigen split) figures are computed inside a fixed window of the
ground truth: the Garg crop (Garg et al., ECCV 2016) or the Eigen crop
(Eigen et al., NeurIPS 2014). VPD's depth code (from GLPDepth) does it in
``depth/utils_depth/metrics.py::cropping_img``
(github.com/wl-zhao/VPD @ 92095abdad4de7a83bab38248bcab01eb242b1f6):

* ``do_kb_crop`` (on by default): the ground truth is first cut to the
  KITTI benchmark window, the bottom 352 rows and the centre 1216 columns;
* ``kitti_crop='garg_crop'`` keeps rows ``[int(0.40810811 h), int(0.99189189
  h))`` and columns ``[int(0.03594771 w), int(0.96405229 w))`` of that
  window, ``'eigen_crop'`` rows ``[int(0.3324324 h), int(0.91351351 h))`` and
  columns ``[int(0.0359477 w), int(0.96405229 w))``;
* only pixels with ``min_depth_eval < gt < max_depth_eval`` count.

mmdiff predicts the whole frame; the evaluation mask selects the same pixels
of it (predictions written with ``output_dir`` stay whole frames).
"""
from typing import Optional, Tuple

import torch
from mmseg.evaluation.metrics import DepthMetric
from mmseg.registry import METRICS
from torch import Tensor

# (row start, row end, column start, column end) as fractions of the window
KITTI_CROPS = {
    'garg_crop': (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    'eigen_crop': (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
KB_CROP = (352, 1216)  # the KITTI benchmark window (height, width)


def kb_window(height: int, width: int) -> Tuple[slice, slice]:
    """Rows and columns of the KITTI benchmark window in a frame."""
    if height < KB_CROP[0] or width < KB_CROP[1]:
        raise ValueError(
            f'kb_crop needs frames of at least {KB_CROP[0]}x{KB_CROP[1]} '
            f'(KITTI raw frames are about 375x1242); got {height}x{width}. '
            'Set kb_crop=False for other frame sizes.')
    top = height - KB_CROP[0]
    left = (width - KB_CROP[1]) // 2
    return slice(top, top + KB_CROP[0]), slice(left, left + KB_CROP[1])


def kitti_eval_mask(gt_depth: Tensor, crop_type: Optional[str],
                    min_depth: float, max_depth: float,
                    kb_crop: bool = True) -> Tensor:
    """Pixels of a whole KITTI frame that the evaluation counts.

    Args:
        gt_depth (Tensor): Ground-truth depth, shape (..., H, W), in metres.
        crop_type (str, optional): 'garg_crop', 'eigen_crop' or None (no
            crop window).
        min_depth (float): Pixels at or below are ignored.
        max_depth (float): Pixels at or above are ignored.
        kb_crop (bool): Only the KITTI benchmark window counts, and the
            crop fractions are taken of that window (VPD's ``do_kb_crop``).
            Defaults to True.

    Returns:
        Tensor: Boolean mask shaped like ``gt_depth``.
    """
    valid = torch.logical_and(gt_depth > min_depth, gt_depth < max_depth)
    if crop_type is not None and crop_type not in KITTI_CROPS:
        raise ValueError(f'crop_type must be one of {sorted(KITTI_CROPS)} '
                         f'or None, got {crop_type!r}.')
    h, w = gt_depth.shape[-2:]
    rows, cols = kb_window(h, w) if kb_crop else (slice(0, h), slice(0, w))
    if crop_type is not None:
        top, bottom, left, right = KITTI_CROPS[crop_type]
        wh, ww = rows.stop - rows.start, cols.stop - cols.start
        rows = slice(rows.start + int(top * wh), rows.start + int(bottom * wh))
        cols = slice(cols.start + int(left * ww), cols.start + int(right * ww))
    window = torch.zeros_like(valid)
    window[..., rows, cols] = True
    return torch.logical_and(valid, window)


@METRICS.register_module()
class KITTIDepthMetric(DepthMetric):
    """``DepthMetric`` evaluated inside the KITTI Garg or Eigen crop.

    Args:
        crop_type (str, optional): 'garg_crop', 'eigen_crop', or None for
            every valid pixel. Defaults to 'garg_crop'.
        kb_crop (bool): Count only the KITTI benchmark window (bottom 352
            rows, centre 1216 columns) and take the crop fractions of it, as
            VPD/GLPDepth evaluate (``do_kb_crop=1``). Defaults to True.
        min_depth_eval (float): Defaults to 1e-3.
        max_depth_eval (float): Defaults to 80.
        **kwargs: Passed to mmseg's ``DepthMetric``.
    """

    def __init__(self,
                 crop_type: Optional[str] = 'garg_crop',
                 kb_crop: bool = True,
                 min_depth_eval: float = 1e-3,
                 max_depth_eval: float = 80.0,
                 **kwargs) -> None:
        if crop_type is not None and crop_type not in KITTI_CROPS:
            raise ValueError(
                f'KITTIDepthMetric: crop_type must be one of '
                f'{sorted(KITTI_CROPS)} or None, got {crop_type!r}.')
        super().__init__(min_depth_eval=min_depth_eval,
                         max_depth_eval=max_depth_eval, crop_type=None,
                         **kwargs)
        self.crop_type = crop_type
        self.kb_crop = kb_crop

    def _get_eval_mask(self, gt_depth: Tensor) -> Tensor:
        return kitti_eval_mask(gt_depth, self.crop_type, self.min_depth_eval,
                               self.max_depth_eval, self.kb_crop)
