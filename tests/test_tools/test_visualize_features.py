"""tools/analysis_tools/visualize_features.py (mmdiff.analysis.visualize) on
a demo checkpoint.

The demo seg config (tiny VPD, 4 classes, attention maps on) is trained for
2 iterations in-process; the tool then writes its PNGs for one demo image.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'visualize_features.py')
SIZE = 128  # the 1/64 tap is 2x2: a 1x1 map has no principal components





@pytest.fixture(scope='module')
def vis_tool(load_tool):
    """tools/analysis_tools/visualize_features.py, imported."""
    return load_tool(TOOL)


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """A demo checkpoint after 2 training iterations, and a demo image."""
    from mmengine.runner import Runner
    tmp = tmp_path_factory.mktemp('vis')
    cfg = Config.fromfile(SEG_CFG)
    ds = dict(num_train=4, num_val=2, size=SIZE,
              data_root=str(tmp / 'data' / 'demo' / 'seg'))
    cfg.train_dataloader.dataset.update(ds)
    cfg.train_dataloader.batch_size = 2
    cfg.merge_from_dict(dict(
        val_cfg=None, val_dataloader=None, val_evaluator=None,
        test_cfg=None, test_dataloader=None, test_evaluator=None))
    cfg.train_cfg.max_iters = 2
    cfg.default_hooks.checkpoint.interval = 2
    vae_dir = str(tmp / 'data' / 'demo' / 'vae')  # 2-step demo VAE
    cfg.custom_hooks[0].update(out_dir=vae_dir, steps=2, size=SIZE)
    cfg.model.backbone.vae_weights = vae_dir
    cfg.work_dir = str(tmp / 'work_dir')
    try:
        Runner.from_cfg(cfg).train()
    finally:
        DefaultScope._instance_dict.clear()
    image = str(tmp / 'data' / 'demo' / 'seg' / 'images' / 'training' /
                'demo_00000.jpg')
    return str(tmp / 'work_dir' / 'iter_2.pth'), image, tmp


def test_writes_taps_maps_and_summary(demo_run, vis_tool):
    ckpt, image, tmp = demo_run
    out = tmp / 'out'
    try:
        written = vis_tool.main([SEG_CFG, ckpt, image, '--out', str(out),
                                '--topk', '3'])
    finally:
        DefaultScope._instance_dict.clear()
    img = cv2.imread(image)
    taps = sorted(out.glob('tap*_pca.png'))
    maps = sorted(out.glob('attn_*.png'))
    assert [p.name for p in taps] == [
        'tap0_stride8_pca.png', 'tap1_stride16_pca.png',
        'tap2_stride32_pca.png', 'tap3_stride64_pca.png']
    # top-3 of the 4 class prompts, named after the demo classes
    from mmdiff.datasets.demo_data import DEMO_SEG_CLASSES
    assert len(maps) == 3
    assert all(p.name.split('_', 2)[2][:-4] in DEMO_SEG_CLASSES
               for p in maps)
    for path in taps + maps:
        pic = cv2.imread(str(path))
        assert pic.shape == img.shape, path.name  # at image size
        assert pic.std() > 1, path.name  # not a constant image
    for path in maps:  # a heat map over the image, not the image itself
        assert np.abs(cv2.imread(str(path)).astype(float) - img).mean() > 1
    summary = cv2.imread(str(out / 'summary.png'))
    # image + 4 taps + 3 maps = 8 tiles in rows of 4, captions on top
    from mmdiff.analysis.visualize import LABEL_H, MIN_TILE
    tile = max(SIZE, MIN_TILE)
    assert summary.shape[:2] == (2 * (tile + LABEL_H), 4 * tile)
    assert set(written.values()) == {str(p) for p in
                                     taps + maps + [out / 'summary.png']}


def test_refuses_grey_image(demo_run, vis_tool, tmp_path):
    ckpt, _, _ = demo_run
    grey = tmp_path / 'grey.png'
    cv2.imwrite(str(grey), np.full((SIZE, SIZE), 128, np.uint8))
    with pytest.raises(ValueError, match='1 channel.*RGB.*Fix'):
        vis_tool.main([SEG_CFG, ckpt, str(grey), '--out', str(tmp_path)])
