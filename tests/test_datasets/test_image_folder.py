"""ImageFolderDataset: a folder of images as it comes, through the pretrain
config's own pipeline (any size, odd formats; corrupt files skipped with a
count; labels of mmseg data sets ignored)."""
import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, init_default_scope

from mmdiff.datasets import ImageFolderDataset

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PRETRAIN_CFG = osp.join(REPO, 'configs', 'pretrain',
                        'diffusion-pretrain_tiny_demo-unlabelled.py')


def _png(path, array) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    ok, buf = cv2.imencode('.png', array)
    assert ok
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def odd_folder(root: str) -> dict:
    """Good images of many kinds and bad files; returns the counts."""
    rng = np.random.default_rng(0)
    _png(f'{root}/a/rgb.png', rng.integers(0, 255, (90, 300, 3), np.uint8))
    _png(f'{root}/a/gray.png', rng.integers(0, 255, (40, 40), np.uint8))
    _png(f'{root}/a/deep/rgba.png', rng.integers(0, 255, (70, 50, 4),
                                                 np.uint8))
    _png(f'{root}/b/u16.png', rng.integers(0, 65535, (64, 64), np.uint16))
    _png(f'{root}/b/one_pixel.png', np.zeros((1, 1, 3), np.uint8))
    ok, jpg = cv2.imencode('.jpg', rng.integers(0, 255, (33, 77, 3),
                                                np.uint8))
    with open(f'{root}/b/UPPER.JPG', 'wb') as f:
        f.write(jpg.tobytes())
    # bad: text named .jpg, empty file, a PNG cut to its header
    with open(f'{root}/a/not_an_image.jpg', 'w') as f:
        f.write('hello')
    open(f'{root}/b/empty.png', 'wb').close()
    ok, png = cv2.imencode('.png', rng.integers(0, 255, (64, 64, 3),
                                                np.uint8))
    with open(f'{root}/b/truncated.png', 'wb') as f:
        f.write(png.tobytes()[:60])
    # ignored: other suffixes and hidden files
    with open(f'{root}/notes.txt', 'w') as f:
        f.write('x')
    _png(f'{root}/.hidden.png', np.zeros((8, 8, 3), np.uint8))
    return dict(good=6, bad=3)


def _pipeline(size: int) -> list:
    cfg = Config.fromfile(PRETRAIN_CFG)
    pipeline = [dict(t) for t in cfg.train_pipeline]
    for t in pipeline:  # the config's transforms at a test size
        if t['type'] == 'ResizeShortestEdge':
            t['scale'] = size
        if t['type'] == 'RandomCrop':
            t['crop_size'] = (size, size)
    return pipeline


def test_odd_and_corrupt_images(tmp_path):
    counts = odd_folder(str(tmp_path))
    init_default_scope('mmseg')  # the pretrain config's scope
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = DATASETS.build(dict(type='ImageFolderDataset',
                                 data_root=str(tmp_path),
                                 pipeline=_pipeline(32)))
    finally:
        logger.removeHandler(handler)
    assert isinstance(ds, ImageFolderDataset)
    assert len(ds) == counts['good']
    assert len(ds.skipped) == counts['bad']
    msg = ' '.join(r.getMessage() for r in records)
    assert f'skipped {counts["bad"]} of {counts["good"] + counts["bad"]}' \
        in msg and 'not_an_image.jpg' in msg
    for i in range(len(ds)):
        item = ds[i]
        assert tuple(item['inputs'].shape) == (3, 32, 32)
        assert str(item['inputs'].dtype) == 'torch.uint8'
    # not recursive: only the top level, which holds no image
    with pytest.raises(ValueError, match='no readable image'):
        ImageFolderDataset(data_root=str(tmp_path), recursive=False)


def test_subfolder_classes_and_errors(tmp_path):
    odd_folder(str(tmp_path))
    ds = ImageFolderDataset(data_root=str(tmp_path), classes='subfolders')
    assert ds.metainfo['classes'] == ('a', 'b')
    ids = {osp.basename(ds.get_data_info(i)['img_path']):
           ds.get_data_info(i)['class_id'] for i in range(len(ds))}
    assert ids['rgba.png'] == 0 and ids['UPPER.JPG'] == 1
    with pytest.raises(FileNotFoundError, match='not a folder'):
        ImageFolderDataset(data_root=str(tmp_path / 'missing'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(ValueError, match='no readable image'):
        ImageFolderDataset(data_root=str(tmp_path / 'empty'))


def test_mmseg_dataset_with_labels_ignored(tmp_path):
    """The demo config's own data set: an mmseg set, no label is read."""
    cfg = Config.fromfile(PRETRAIN_CFG)
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(data_root=str(tmp_path / 'demo' / 'seg'), num_train=3,
                  size=48, pipeline=_pipeline(32))
    init_default_scope('mmseg')
    import mmdiff.datasets.demo_datasets  # noqa: F401
    ds = DATASETS.build(ds_cfg)
    assert len(ds) == 3
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 32, 32)
    assert 'gt_sem_seg' not in item['data_samples']
