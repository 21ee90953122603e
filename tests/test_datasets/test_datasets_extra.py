"""The data-set extra (requirements/datasets.txt): albumentations for mmseg's
``Albu`` without a second OpenCV, every other need of it installed."""
import importlib.metadata as md
import os.path as osp

import numpy as np
from mmengine.config import Config
from mmengine.registry import TRANSFORMS, init_default_scope
from packaging.requirements import Requirement

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _pins() -> dict:
    pins = {}
    with open(osp.join(ROOT, 'requirements/datasets.txt')) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                req = Requirement(line)
                pins[req.name] = req
    return pins


def test_pinned_versions_are_installed():
    for name, req in _pins().items():
        assert req.specifier.contains(md.version(name)), (name, req)


def test_no_second_opencv_and_every_other_need_met():
    """pip check, less the one need we refuse: opencv-python-headless."""
    assert 'cv2/__init__.py' in {str(p) for p in md.files('opencv-python')}
    for dist in ('opencv-python-headless', 'opencv-contrib-python',
                 'opencv-contrib-python-headless'):
        try:
            md.version(dist)
        except md.PackageNotFoundError:
            continue
        raise AssertionError(f'{dist} is installed beside opencv-python')
    for name in _pins():
        for line in md.requires(name) or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate():
                continue
            if req.name == 'opencv-python-headless':
                continue  # cv2 comes from opencv-python (mmcv's)
            assert req.specifier.contains(md.version(req.name),
                                          prereleases=True), (name, line)


def test_nyu_training_albu_runs():
    """The NYU config's own Albu step (mmseg 1.2.2) on a 480x480 crop."""
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py'))
    step = next(t for t in cfg.train_dataloader.dataset.pipeline
                if t['type'] == 'Albu')
    init_default_scope('mmseg')
    albu = TRANSFORMS.build(step)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (480, 480, 3), dtype=np.uint8)
    out = albu(dict(img=img.copy(), img_shape=(480, 480)))
    assert out['img'].shape == (480, 480, 3)
    assert out['img'].dtype == np.uint8
