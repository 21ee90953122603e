"""tools/train.py and tools/test.py on every demo config, in subprocesses.

The same entry points serve mmseg and mmdet configs (the config's
default_scope decides). Each demo trains a few iterations from the real
config file (data generated on first use in a temp folder), writes a
checkpoint, ``--resume`` continues from it (one mmseg and one mmdet config),
and tools/test.py re-evaluates it with the host's real metric.
"""
import glob
import json
import os.path as osp

import pytest
import torch

import mmdiff  # noqa: F401  (weights-only allow-list for mmengine files)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')
# config -> (metric keys tools/test.py must report, resume tested)
DEMOS = {
    'vpd_tiny-fpn_demo-seg.py': (['mIoU', 'aAcc'], True),
    'vpd_tiny-depth_demo-nyu.py': (['rmse', 'abs_rel', 'd1'], False),
    'faster-rcnn_vpd_tiny-fpn_demo-coco.py': (['coco/bbox_mAP'], False),
    'mask-rcnn_vpd_tiny-fpn_demo-coco.py':
    (['coco/bbox_mAP', 'coco/segm_mAP'], True),
    'mask2former_vpd_tiny_demo-coco-panoptic.py':
    (['coco_panoptic/PQ', 'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st'],
     False),
    # the small-object demo with the VAE encoder's stride-4 level
    'mask-rcnn_vpd_tiny-p2-fpn_demo-coco-small.py':
    (['coco/bbox_mAP', 'coco/bbox_mAP_s', 'coco/segm_mAP_s'], False),
    # a diffusion transformer (PixArt-shaped) + ViTDet's simple pyramid
    'dit_pixart-tiny-sfp_demo-seg.py': (['mIoU', 'aAcc'], False),
}
# Demos that differ from a trained one above only in what tests/test_configs
# builds (its stride-8 parent: the P2 demo without vae_taps; and that parent
# on images resized to 256 px), not trained again here.
VARIANTS = {
    'mask-rcnn_vpd_tiny-fpn_demo-coco-small.py',
    'mask-rcnn_vpd_tiny-fpn_demo-coco-small-2x.py',
}


def test_every_demo_is_covered():
    assert sorted(set(DEMOS) | VARIANTS) == sorted(
        osp.basename(p) for p in glob.glob(osp.join(DEMO, '*.py')))


@pytest.fixture(scope='module')
def trained(demo_run):
    """A demo trained 4 iterations, once per session (tests/conftest.py)."""
    return demo_run


@pytest.mark.parametrize('name', sorted(DEMOS))
def test_train_writes_checkpoint_and_test_reports_metrics(trained, run_tool,
                                                          name):
    cwd, work_dir, log = trained(name)
    assert 'Iter(train) [4/4]' in log
    ckpt = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt)
    state = torch.load(ckpt, map_location='cpu')  # weights-only default
    assert state['meta']['iter'] == 4
    assert any(k.startswith(('backbone.unet.', 'backbone.transformer.'))
               for k in state['state_dict'])

    test_dir = osp.join(work_dir, 'test')
    proc = run_tool('tools/test.py', osp.join(DEMO, name), ckpt,
                    '--work-dir', test_dir, cwd=cwd)
    out = proc.stdout + proc.stderr
    metrics = _last_metrics(test_dir)
    for key in DEMOS[name][0]:
        assert key in metrics, f'{key} missing from {metrics} / {out[-2000:]}'
        assert isinstance(metrics[key], (int, float))


@pytest.mark.parametrize('name', [n for n in sorted(DEMOS) if DEMOS[n][1]])
def test_resume_continues_from_checkpoint(trained, run_tool,
                                          fast_demo_options, name):
    cwd, work_dir, _ = trained(name)
    proc = run_tool('tools/train.py', osp.join(DEMO, name), '--work-dir',
                    work_dir, '--resume', '--cfg-options',
                    'train_cfg.max_iters=6', *fast_demo_options, cwd=cwd)
    log = proc.stdout + proc.stderr
    assert 'resumed' in log.lower()
    assert 'Iter(train) [6/6]' in log
    assert 'Iter(train) [1/6]' not in log  # did not start over
    before = torch.load(osp.join(work_dir, 'iter_4.pth'), map_location='cpu')
    after = torch.load(osp.join(work_dir, 'iter_6.pth'), map_location='cpu')
    assert after['meta']['iter'] == 6
    # the optimizer state went on from the checkpoint's (AdamW step count)
    steps = [s['step'] for s in after['optimizer']['state'].values()]
    steps_before = [s['step'] for s in before['optimizer']['state'].values()]
    assert max(steps) == max(steps_before) + 2


def _last_metrics(work_dir: str) -> dict:
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert logs, f'no scalar log under {work_dir}'
    with open(logs[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def test_depth_prediction_size_and_positive(trained):
    from mmseg.apis import inference_model, init_model
    cwd, work_dir, _ = trained('vpd_tiny-depth_demo-nyu.py')
    config = osp.join(DEMO, 'vpd_tiny-depth_demo-nyu.py')
    model = init_model(config, osp.join(work_dir, 'iter_4.pth'), 'cpu')
    # an image alone, no ground truth to load
    model.cfg.test_pipeline = [
        t for t in model.cfg.test_pipeline
        if t['type'] != 'LoadDepthAnnotation'
    ]
    img = sorted(glob.glob(osp.join(cwd, 'data/demo/depth/images/test/*')))[0]
    import mmcv
    h, w = mmcv.imread(img).shape[:2]
    result = inference_model(model, img)
    depth = result.pred_depth_map.data
    assert depth.shape[-2:] == (h, w)
    assert bool((depth > 0).all())


def test_detection_boxes_inside_image(trained):
    from mmdet.apis import inference_detector, init_detector
    cwd, work_dir, _ = trained('faster-rcnn_vpd_tiny-fpn_demo-coco.py')
    config = osp.join(DEMO, 'faster-rcnn_vpd_tiny-fpn_demo-coco.py')
    model = init_detector(
        config, osp.join(work_dir, 'iter_4.pth'), device='cpu')
    img = sorted(glob.glob(osp.join(cwd, 'data/demo/coco/val/*.jpg')))[0]
    import mmcv
    h, w = mmcv.imread(img).shape[:2]
    pred = inference_detector(model, img).pred_instances
    assert len(pred.bboxes) > 0
    boxes = pred.bboxes
    assert bool((boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all())
    assert bool((boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all())
    assert bool((boxes[:, 2] >= boxes[:, 0]).all())
