"""mmdiff.datasets.kitti_depth.KITTIDepthDataset on a hand-made Eigen-split
layout, built from the KITTI reference config's own dataset settings."""
import os.path as osp

import mmcv
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/vpd/vpd_sd15_4xb8-25k_kitti-352x704.py')
DRIVE = '2011_09_26/2011_09_26_drive_0002_sync'
IMG = DRIVE + '/image_02/data/{:010d}.png'
GT = '2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/{:010d}.png'
METRES = 12.5  # stored as uint16 in 1/256 m: 3200


def _layout(root, lines):
    """raw/ + gt_depth/ with frame 1 (image and depth) and a split file."""
    rng = np.random.default_rng(0)
    mmcv.imwrite(rng.integers(0, 255, (6, 10, 3), dtype=np.uint8),
                 osp.join(root, 'raw', IMG.format(1)))
    depth = np.zeros((6, 10), np.uint16)
    depth[2:4, 3:7] = int(METRES * 256)
    mmcv.imwrite(depth, osp.join(root, 'gt_depth', GT.format(1)))
    split = osp.join(root, 'split.txt')
    with open(split, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return split


def _dataset(root, ann_file, pipeline=None):
    import mmdiff.datasets.kitti_depth  # noqa: F401
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(CONFIG).val_dataloader.dataset
    cfg.update(data_root=root, ann_file=ann_file)
    if pipeline is not None:
        cfg.pipeline = pipeline
    return DATASETS.build(cfg)


def test_reads_split_skips_none_and_loads_metres(tmp_path):
    root = str(tmp_path)
    split = _layout(root, [
        f'{IMG.format(1)} {GT.format(1)} 721.5377',
        f'{IMG.format(2)} None 721.5377',  # no ground truth: skipped
        ''
    ])
    data = _dataset(root, split)
    assert len(data) == 1
    info = data.get_data_info(0)
    assert info['img_path'] == osp.join(root, 'raw', IMG.format(1))
    assert info['depth_map_path'] == osp.join(root, 'gt_depth', GT.format(1))
    assert info['focal'] == pytest.approx(721.5377)
    assert info['category_id'] == -1  # the mean prompt
    # the config's test pipeline: LoadDepthAnnotation(1 / 256) -> metres
    sample = data[0]
    gt = sample['data_samples'].gt_depth_map.data.numpy()[0]
    assert gt.shape == (6, 10)
    assert gt.max() == pytest.approx(METRES) and gt[0, 0] == 0
    assert (gt == METRES).sum() == 8


def test_focal_is_optional(tmp_path):
    root = str(tmp_path)
    split = _layout(root, [f'{IMG.format(1)} {GT.format(1)}'])
    assert 'focal' not in _dataset(root, split, []).get_data_info(0)


def test_missing_split_file_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match='kitti_eigen_'):
        _dataset(str(tmp_path), 'kitti_eigen_test_files_with_gt.txt', [])


def test_malformed_line_names_file_and_line(tmp_path):
    root = str(tmp_path)
    split = _layout(root, [f'{IMG.format(1)} {GT.format(1)}', 'only_one'])
    with pytest.raises(ValueError, match=r'split\.txt:2: expected'):
        _dataset(root, split, [])
