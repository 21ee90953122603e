"""Test-time augmentation for mmseg's ``DepthEstimator``.

mmseg ships ``SegTTAModel`` (it averages class probabilities) and no TTA
model for depth: its depth configs flip inside the estimator
(``test_cfg.mode='slide_flip'``). This one lets ``tools/test.py --tta`` run a
depth config through mmengine's ``BaseTTAModel`` and a ``tta_pipeline`` of
flips and scales, as for segmentation.
"""
from typing import List

import torch
from mmengine.model import BaseTTAModel
from mmengine.structures import PixelData

from mmdiff.registry import MODELS


@MODELS.register_module()
class DepthTTAModel(BaseTTAModel):
    """Average the depth maps predicted for the augmented copies of an image.

    ``DepthEstimator.postprocess_result`` already undoes each copy's
    padding, flip and resize (every map is at the original image size), so
    merging is a mean over copies. Use it as
    ``tta_model = dict(type='mmdiff.DepthTTAModel')`` with a
    ``tta_pipeline`` of ``TestTimeAug`` flips/scales.
    """

    def merge_preds(self, data_samples_list: List[list]) -> list:
        """Merge the predictions of each image's augmented copies.

        Args:
            data_samples_list (list[list[SegDataSample]]): Per image, the
                predictions of its augmented copies.

        Returns:
            list[SegDataSample]: One prediction per image.
        """
        merged = []
        for samples in data_samples_list:
            depth = torch.stack(
                [s.pred_depth_map.data for s in samples]).mean(dim=0)
            out = samples[0]
            out.set_data({'pred_depth_map': PixelData(data=depth)})
            merged.append(out)
        return merged
