"""KITTI depth (Eigen split) for mmseg's depth pipeline.

mmseg 1.2 reads NYU only. This data set reads the split files that the KITTI
depth literature shares (BTS, AdaBins, VPD's peers), one sample a line::

    <image path> <depth path | None> <focal length>

with paths relative to ``data_prefix['img_path']`` and
``data_prefix['depth_map_path']``. Depth maps are KITTI's uint16 PNGs in
1/256 m (load with ``LoadDepthAnnotation(depth_rescale_factor=1 / 256)``).
Lines without ground truth (``None``) are skipped.
"""
import os.path as osp
from typing import List

from mmengine import fileio
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


@DATASETS.register_module()
class KITTIDepthDataset(BaseSegDataset):
    """KITTI Eigen-split depth data set.

    Args:
        ann_file (str): Split file, e.g.
            ``kitti_eigen_train_files_with_gt.txt``.
        data_prefix (dict): ``img_path`` (the raw data root) and
            ``depth_map_path`` (the ground-truth root). Defaults to
            ``dict(img_path='raw', depth_map_path='gt_depth')``.
        **kwargs: Passed to ``BaseSegDataset``.
    """
    METAINFO = dict(classes=('kitti', ))

    def __init__(self,
                 ann_file: str,
                 data_prefix: dict = dict(
                     img_path='raw', depth_map_path='gt_depth'),
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, data_prefix=data_prefix,
                         **kwargs)

    def load_data_list(self) -> List[dict]:
        img_dir = self.data_prefix.get('img_path', '')
        depth_dir = self.data_prefix.get('depth_map_path', '')
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'KITTI split file {self.ann_file!r} not found. Put the Eigen '
                'split files (kitti_eigen_{train,test}_files_with_gt.txt) '
                'under data_root or set ann_file.')
        data_list = []
        for lineno, line in enumerate(
                fileio.get_text(self.ann_file).splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise ValueError(
                    f'{self.ann_file}:{lineno}: expected "<image> <depth> '
                    f'[<focal>]", got {line!r}')
            if parts[1] == 'None':
                continue
            info = dict(
                img_path=osp.join(img_dir, parts[0]),
                depth_map_path=osp.join(depth_dir, parts[1]),
                seg_fields=[],
                category_id=-1)  # no scene prompt: the mean embedding
            if len(parts) > 2:
                info['focal'] = float(parts[2])
            data_list.append(info)
        return data_list
