"""The hosts' own tools (mmseg/mmdet ``tools/``, shipped in their packages'
``.mim``) on mmdiff configs, and user configs inheriting ``mmdiff::`` bases.

A user config in its own folder, ``_base_ = 'mmdiff::demo/...'``, trains 2
iterations from another working directory with mmseg's ``tools/train.py``
(which reads the config before anything imports mmdiff) and with ours (which
imports mmdiff first); mmseg's and mmdet's ``tools/test.py`` evaluate the
session's demo checkpoints; mmdet's ``get_flops.py`` counts a detector.
These need the installed package (``make install-tests``): ``mmdiff::``
resolves through its ``.mim`` folder.
"""
import glob
import importlib.util
import json
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')
SEG = 'vpd_tiny-fpn_demo-seg.py'
DET = 'faster-rcnn_vpd_tiny-fpn_demo-coco.py'
INS = 'mask-rcnn_vpd_tiny-fpn_demo-coco.py'
FEW = ['--cfg-options', 'test_dataloader.dataset.indices=4']  # 4 images


def host_tool(package: str, tool: str) -> str:
    """Path of ``<package>/.mim/tools/<tool>`` in the environment."""
    spec = importlib.util.find_spec(package)
    path = osp.join(spec.submodule_search_locations[0], '.mim', 'tools',
                    tool)
    assert osp.isfile(path), f'{package} ships no {tool} at {path}'
    return path


def _metrics(work_dir: str) -> dict:
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert logs, f'no scalar log under {work_dir}'
    with open(logs[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def _child(folder, base: str, body: str = '') -> str:
    path = osp.join(str(folder), 'my_config.py')
    with open(path, 'w') as f:
        f.write(f"_base_ = 'mmdiff::demo/{base}'\n{body}")
    return path


def test_mmdiff_child_trains_with_mmseg_tool_without_import(
        demo_run, run_tool, fast_demo_options, tmp_path):
    cwd, work_dir, _ = demo_run(SEG)  # a foreign folder with the demo data
    child = _child(tmp_path, SEG, 'train_cfg = dict(max_iters=2)\n')
    work = str(tmp_path / 'work')
    proc = run_tool(host_tool('mmseg', 'train.py'), child, '--work-dir',
                    work, '--cfg-options', *fast_demo_options, cwd=cwd)
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log, log[-3000:]
    assert osp.isfile(osp.join(work, 'iter_2.pth'))

    # mmseg's test.py on the child with the demo's checkpoint
    test_work = str(tmp_path / 'test')
    run_tool(host_tool('mmseg', 'test.py'), child,
             osp.join(work_dir, 'iter_4.pth'), '--work-dir', test_work,
             *FEW, cwd=cwd)
    assert 'mIoU' in _metrics(test_work)


def test_mmdiff_child_detector_trains_with_our_tool(
        demo_run, run_tool, fast_demo_options, tmp_path):
    cwd, _, _ = demo_run(DET)
    child = _child(tmp_path, DET, 'train_cfg = dict(max_iters=2)\n'
                   'model = dict(roi_head=dict(bbox_head=dict('
                   'fc_out_channels=64)))\n')
    work = str(tmp_path / 'work')
    proc = run_tool('tools/train.py', child, '--work-dir', work,
                    '--cfg-options', *fast_demo_options, cwd=cwd)
    assert 'Iter(train) [2/2]' in proc.stdout + proc.stderr


def test_mmdet_tools_train_and_test_on_demos(demo_run, run_tool,
                                             fast_demo_options, tmp_path):
    cwd, _, _ = demo_run(INS)
    work = str(tmp_path / 'train')
    proc = run_tool(host_tool('mmdet', 'train.py'), osp.join(DEMO, INS),
                    '--work-dir', work, '--cfg-options',
                    'train_cfg.max_iters=2', *fast_demo_options, cwd=cwd)
    assert 'Iter(train) [2/2]' in proc.stdout + proc.stderr

    # mmdet's own test.py --tta (its flip fallback) on the detector demo
    cwd, work_dir, _ = demo_run(DET)
    tta_work = str(tmp_path / 'tta')
    run_tool(host_tool('mmdet', 'test.py'), osp.join(DEMO, DET),
             osp.join(work_dir, 'iter_4.pth'), '--tta', '--work-dir',
             tta_work, *FEW, cwd=cwd)
    assert 'coco/bbox_mAP' in _metrics(tta_work)


def test_mmdet_get_flops_on_detector(demo_run, run_tool):
    cwd, _, _ = demo_run(DET)  # its demo data
    # torch.jit tracing used to abort the process (INTERNAL ASSERT)
    proc = run_tool(host_tool('mmdet', osp.join('analysis_tools',
                                                'get_flops.py')),
                    osp.join(DEMO, DET), '--num-images', '1', cwd=cwd)
    out = proc.stdout + proc.stderr
    assert 'Flops:' in out and 'Params:' in out, out[-3000:]
    flops = out.split('Flops:')[1].split()[0]
    assert float(flops.rstrip('GMK')) > 0


def test_own_data_seg_config_copied_and_trained(demo_run, run_tool,
                                                tmp_path):
    """configs/custom/vpd_sd15-fpn_my-seg-512x512.py as the README says:
    copied to the user's folder, classes and data_root edited, trained on
    image + mask folders (the demo scenes, laid out as the config asks)."""
    import os

    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    cwd, _, _ = demo_run(SEG)  # its data: images/ + annotations/ folders
    root = tmp_path / 'data' / 'my_seg'
    for kind, src in (('images', 'images'), ('masks', 'annotations')):
        for split, demo_split in (('train', 'training'),
                                  ('val', 'validation')):
            os.makedirs(root / kind, exist_ok=True)
            os.symlink(osp.join(cwd, 'data', 'demo', 'seg', src, demo_split),
                       root / kind / split)
    with open(osp.join(ROOT, 'configs', 'custom',
                       'vpd_sd15-fpn_my-seg-512x512.py')) as f:
        text = f.read()
    edits = {
        "classes = ('background', 'building', 'road')":
        "classes = ('background', 'circle', 'square', 'triangle')",
        'palette = [(0, 0, 0), (180, 120, 120), (140, 140, 140)]':
        'palette = [(0, 0, 0), (220, 20, 60), (0, 170, 0), (30, 80, 230)]',
    }
    for old, new in edits.items():
        assert old in text, f'the config no longer has {old!r}'
        text = text.replace(old, new)
    (tmp_path / 'my_seg_config.py').write_text(text)
    # offline: the tiny U-Net and learned prompts instead of SD1.5 + CLIP
    (tmp_path / 'my_seg_tiny.py').write_text(
        "_base_ = './my_seg_config.py'\n"
        'model = dict(backbone=dict(pretrained=None, '
        f'unet_cfg={tiny_unet_cfg()!r}, vae_cfg={tiny_vae_cfg()!r}, '
        'class_embeddings=dict(_delete_=True, num_classes=4, dim=32)), '
        'neck=dict(in_channels=[32, 68, 68, 64]))\n')
    proc = run_tool(
        'tools/train.py', str(tmp_path / 'my_seg_tiny.py'), '--work-dir',
        str(tmp_path / 'work'), '--cfg-options', 'train_cfg.max_iters=2',
        'train_dataloader.batch_size=1', 'val_cfg=None',
        'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.logger.interval=1', cwd=str(tmp_path))
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log
