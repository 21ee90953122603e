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
             cwd=cwd)
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


def test_mmdet_tools_train_and_test_tta_on_demo(demo_run, run_tool,
                                                 fast_demo_options, tmp_path):
    cwd, work_dir, _ = demo_run(INS)
    work = str(tmp_path / 'train')
    proc = run_tool(host_tool('mmdet', 'train.py'), osp.join(DEMO, INS),
                    '--work-dir', work, '--cfg-options',
                    'train_cfg.max_iters=2', *fast_demo_options, cwd=cwd)
    assert 'Iter(train) [2/2]' in proc.stdout + proc.stderr
    test_work = str(tmp_path / 'test')
    run_tool(host_tool('mmdet', 'test.py'), osp.join(DEMO, INS),
             osp.join(work_dir, 'iter_4.pth'), '--tta', '--work-dir',
             test_work, cwd=cwd)
    metrics = _metrics(test_work)
    assert 'coco/bbox_mAP' in metrics and 'coco/segm_mAP' in metrics


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
