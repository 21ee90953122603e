"""What a user does right after training, on the demo checkpoints.

The hosts' inference APIs and Inferencers at an odd image size (200x150),
``demo/image_demo.py``, ``tools/test.py --show-dir --tta``, ``--amp`` on CPU
and a source-layout checkpoint. The checkpoints come from the session's demo
runs (tests/conftest.py: 4 iterations each, trained once).
"""
import glob
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')
SEG = 'vpd_tiny-fpn_demo-seg.py'
DEPTH = 'vpd_tiny-depth_demo-nyu.py'
DET = 'faster-rcnn_vpd_tiny-fpn_demo-coco.py'
INS = 'mask-rcnn_vpd_tiny-fpn_demo-coco.py'
H, W = 150, 200  # not a multiple of 8, 32 or 64


@pytest.fixture(scope='module')
def odd_image(tmp_path_factory):
    """A 200x150 demo scene (BGR jpg, as a user's photo)."""
    from mmdiff.datasets import render_scene
    scene = render_scene(np.random.default_rng(7), size=(H, W))
    path = str(tmp_path_factory.mktemp('odd') / 'scene_200x150.jpg')
    assert cv2.imwrite(path, scene['img'][..., ::-1])
    return path


def _ckpt(demo_run, name):
    cwd, work_dir, _ = demo_run(name)
    return cwd, osp.join(work_dir, 'iter_4.pth')


def _images(folder):
    return sorted(glob.glob(osp.join(folder, '**', '*.[jp][pn]g'),
                            recursive=True))


# -- the hosts' APIs ---------------------------------------------------------
@pytest.mark.parametrize('name', [SEG, DEPTH])
def test_mmseg_apis_any_size(demo_run, odd_image, tmp_path, name):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    _, ckpt = _ckpt(demo_run, name)
    config = osp.join(DEMO, name)
    key = 'pred_depth_map' if name == DEPTH else 'pred_sem_seg'

    result = inference_model(init_model(config, ckpt, 'cpu'), odd_image)
    assert tuple(result.get(key).data.shape[-2:]) == (H, W)
    if name == DEPTH:
        assert bool((result.pred_depth_map.data > 0).all())

    inferencer = MMSegInferencer(config, weights=ckpt, device='cpu')
    out = inferencer(odd_image, out_dir=str(tmp_path),
                     return_datasamples=True)
    assert tuple(out.get(key).data.shape[-2:]) == (H, W)
    drawn = _images(str(tmp_path))
    assert drawn, 'MMSegInferencer wrote no visualisation'
    assert cv2.imread(drawn[0]).shape[1] == W


@pytest.mark.parametrize('name', [DET, INS])
def test_mmdet_apis_any_size_and_drawing(demo_run, odd_image, tmp_path,
                                         name):
    from mmdet.apis import DetInferencer, inference_detector, init_detector
    _, ckpt = _ckpt(demo_run, name)
    config = osp.join(DEMO, name)

    pred = inference_detector(init_detector(config, ckpt, device='cpu'),
                              odd_image).pred_instances
    assert len(pred.bboxes) > 0
    assert float(pred.bboxes[:, 2].max()) <= W
    assert float(pred.bboxes[:, 3].max()) <= H
    if name == INS:
        assert tuple(pred.masks.shape[-2:]) == (H, W)

    # drawing boxes needs the palette as (r, g, b) tuples
    inferencer = DetInferencer(config, weights=ckpt, device='cpu')
    out = inferencer(odd_image, out_dir=str(tmp_path), pred_score_thr=0.0,
                     no_save_pred=False)
    assert len(out['predictions'][0]['bboxes']) == len(pred.bboxes)
    drawn = _images(osp.join(str(tmp_path), 'vis'))
    assert drawn and cv2.imread(drawn[0]).shape[:2] == (H, W)
    assert glob.glob(osp.join(str(tmp_path), 'preds', '*.json'))


# -- demo/image_demo.py ----------------------------------------------------
# seg and box drawing are also covered by the Inferencers above
@pytest.mark.parametrize('name', [DEPTH, INS])
def test_image_demo_writes_host_visualisation(demo_run, run_tool, odd_image,
                                              tmp_path, name):
    _, ckpt = _ckpt(demo_run, name)
    out = str(tmp_path / 'result.png')
    proc = run_tool('demo/image_demo.py', odd_image, osp.join(DEMO, name),
                    ckpt, '--out-file', out, '--score-thr', '0',
                    cwd=str(tmp_path))
    assert 'wrote' in proc.stdout
    vis = cv2.imread(out)
    assert vis is not None and vis.shape[1] == W
    if name != DEPTH:
        assert vis.shape[0] == H
        return
    # depth: the image above its colour-mapped depth, and two PNGs
    assert vis.shape[0] == 2 * H
    raw = cv2.imread(str(tmp_path / 'result_depth.png'), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (H, W)
    assert 0 < raw.min() and raw.max() <= 10000  # mm, max_depth 10 m
    color = cv2.imread(str(tmp_path / 'result_depth_color.png'))
    assert color.shape == (H, W, 3)


PANOPTIC = 'mask2former_vpd_tiny_demo-coco-panoptic.py'


def test_image_demo_panoptic_without_segments(demo_run, run_tool, odd_image,
                                              tmp_path):
    """A panoptic prediction with no segment (here: no query may pass the
    fusion head's threshold) crashed in mmdet's visualiser (`need at least
    one array to stack`)."""
    _, ckpt = _ckpt(demo_run, PANOPTIC)
    child = tmp_path / 'no_segment.py'
    child.write_text(f'_base_ = [{osp.join(DEMO, PANOPTIC)!r}]\n'
                     'model = dict(test_cfg=dict(object_mask_thr=1.01))\n')
    out = str(tmp_path / 'result.png')
    proc = run_tool('demo/image_demo.py', odd_image, str(child), ckpt,
                    '--out-file', out, cwd=str(tmp_path))
    assert 'no segment predicted' in proc.stdout and 'wrote' in proc.stdout
    vis = cv2.imread(out)
    assert vis is not None and vis.shape[:2] == (H, W)


# -- tools/test.py --show-dir --tta ------------------------------------------
# 4 validation images: enough to draw, augment and score
FEW = ['--cfg-options', 'test_dataloader.dataset.indices=4']


@pytest.mark.parametrize('name', [SEG, DEPTH, DET, INS])
def test_test_tool_show_dir_and_tta(demo_run, run_tool, tmp_path, name):
    cwd, ckpt = _ckpt(demo_run, name)
    show = str(tmp_path / 'show')
    work = str(tmp_path / 'work')
    # mmdet has no TTA for masks (DetTTAModel merges boxes only)
    tta = ['--tta'] if name != INS else []
    run_tool('tools/test.py', osp.join(DEMO, name), ckpt, *tta,
             '--show-dir', show, '--work-dir', work, *FEW, cwd=cwd)
    with open(sorted(glob.glob(osp.join(work, '*', '*.json')))[-1]) as f:
        metrics = json.loads(f.read().strip().splitlines()[-1])
    key = {SEG: 'mIoU', DEPTH: 'rmse', DET: 'coco/bbox_mAP',
           INS: 'coco/segm_mAP'}[name]
    assert isinstance(metrics.get(key), (int, float)), metrics
    # mmseg writes under the visualizer's save_dir, mmdet under work_dir
    drawn = _images(show) or _images(osp.join(work, '*', show))
    assert len(drawn) == 4, drawn


def test_tta_per_host():
    """What --tta wraps each demo in; masks refused with the reason."""
    from mmengine.config import Config

    from mmdiff.apis.host_options import apply_tta
    wrapped = {}
    for name in (SEG, DEPTH, DET):
        cfg = apply_tta(Config.fromfile(osp.join(DEMO, name)))
        wrapped[name] = cfg.model.type
        assert cfg.test_dataloader.dataset.pipeline == cfg.tta_pipeline
        assert any(t['type'] == 'TestTimeAug' for t in cfg.tta_pipeline)
    assert wrapped == {SEG: 'SegTTAModel', DEPTH: 'mmdiff.DepthTTAModel',
                       DET: 'DetTTAModel'}
    with pytest.raises(ValueError, match='without --tta'):
        apply_tta(Config.fromfile(osp.join(DEMO, INS)))


# -- --amp on CPU -----------------------------------------------------------
def test_train_amp_on_cpu_autocasts_backbone(demo_run, run_tool,
                                             fast_demo_options, tmp_path):
    cwd, _ = _ckpt(demo_run, SEG)  # its data and demo VAE
    work = str(tmp_path / 'amp')
    proc = run_tool('tools/train.py', osp.join(DEMO, SEG), '--amp',
                    '--work-dir', work, '--cfg-options',
                    'train_cfg.max_iters=2', *fast_demo_options, cwd=cwd)
    log = proc.stdout + proc.stderr
    assert '--amp: backbone amp_dtype=bfloat16' in log
    assert 'Iter(train) [2/2]' in log
    from mmengine.config import Config
    dumped = Config.fromfile(osp.join(work, SEG))
    assert dumped.model.backbone.amp_dtype == 'bfloat16'
    assert dumped.optim_wrapper.type == 'OptimWrapper'

    from mmdiff.apis.host_options import apply_amp
    assert 'AmpOptimWrapper' in apply_amp(dumped, device='cuda')
    assert dumped.optim_wrapper.type == 'AmpOptimWrapper'


def test_source_layout_checkpoint_points_to_converter(tmp_path):
    from mmdiff.converters.layouts import LAYOUTS
    from mmdiff.apis import check_checkpoint
    model = torch.nn.Linear(2, 2)
    for name in ('vpd_seg', 'vpd_depth', 'mmseg_vpd'):
        path = str(tmp_path / f'{name}.pth')
        torch.save({'state_dict': {LAYOUTS[name].signature + 'weight':
                                   torch.zeros(1)}}, path)
        with pytest.raises(RuntimeError) as err:
            check_checkpoint(path, model)
        msg = str(err.value)
        assert 'vpd_to_mmdiff.py' in msg and name in msg, msg
    path = str(tmp_path / 'sd.ckpt')
    torch.save({'state_dict': {LAYOUTS['sd'].signature + 'weight':
                               torch.zeros(1)}}, path)
    with pytest.raises(RuntimeError) as err:
        check_checkpoint(path, model)
    assert 'model.backbone.pretrained=' in str(err.value)
