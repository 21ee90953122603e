"""Findings 5 and 12 of issue 24, through ``tools/train.py``.

5. Two runs in one work dir mixed silently (both exit 0, checkpoints
   interleaved). Here run A trains in a work dir; run B, started in the same
   dir while A lives, is refused with a message naming A (pid, host) and the
   way out; A is then killed with SIGKILL, and run C in that dir starts
   (a killed run's lock does not block).
12. The README's inheritance example (a child of the seg demo with
   ``train_cfg = dict(max_iters=2000)``) trained at lr 0 from iteration 600
   on. Run A IS that example, written as the README writes it: its log
   names both numbers and says the schedule was stretched. Run C is the same
   pattern scaled down (the base's schedule ends at 4, the child asks for
   12; a checkpoint interval of 20 lies beyond the run): it trains to 12
   with a positive learning rate at every iteration before the last.
"""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_tools'))
from test_resume import TRAIN, _env, make_demo_data  # noqa: E402

# the README's example, verbatim (README "Your own data")
README_CHILD = ("_base_ = 'mmdiff::demo/vpd_tiny-fpn_demo-seg.py'\n"
                'train_cfg = dict(max_iters={max_iters})\n')
DS = 'train_dataloader.dataset'
SMALL = ['train_dataloader.batch_size=2', f'{DS}.num_train=8',
         f'{DS}.num_val=2', f'{DS}.size=64', 'val_cfg=None',
         'val_dataloader=None', 'val_evaluator=None',
         'default_hooks.logger.interval=1', 'custom_hooks.0.steps=2',
         'custom_hooks.0.size=64']
# the base's schedule, scaled down: warm-up to 1, poly decay to 4
SHORT_BASE = ['param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
              'param_scheduler.1.end=4',
              'default_hooks.checkpoint.interval=20']


def _child(tmp_path, max_iters: int) -> str:
    path = tmp_path / f'my_config_{max_iters}.py'
    path.write_text(README_CHILD.format(max_iters=max_iters))
    return str(path)


def _newest_scalars(work_dir: str) -> dict:
    stamps = sorted(d for d in os.listdir(work_dir) if osp.isfile(
        osp.join(work_dir, d, 'vis_data', 'scalars.json')))
    with open(osp.join(work_dir, stamps[-1], 'vis_data',
                       'scalars.json')) as f:
        recs = [json.loads(line) for line in f]
    return {r['iter']: r for r in recs if 'loss' in r}


def test_second_run_refused_killed_run_does_not_block_schedule_fits(
        tmp_path):
    make_demo_data(tmp_path)
    work = str(tmp_path / 'work')
    log_a = open(tmp_path / 'a.log', 'w')
    a = subprocess.Popen(
        [sys.executable, TRAIN, _child(tmp_path, 2000), '--work-dir', work,
         '--cfg-options', *SMALL], cwd=tmp_path, env=_env(), text=True,
        stdout=log_a, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        # logged once the runner is built, under the lock (or training
        # started without it)
        while not any(key in (tmp_path / 'a.log').read_text() for key in (
                'train_cfg.max_iters is 2000', 'Iter(train)')) and \
                a.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        out_a = (tmp_path / 'a.log').read_text()
        assert a.poll() is None, out_a[-3000:]
        # finding 12, the README's numbers: stretched, both named
        assert ('param_scheduler.1 (PolyLR) ended at iteration 600 but '
                'train_cfg.max_iters is 2000') in out_a, out_a[-3000:]
        assert 'Stretched to end=2000' in out_a

        # finding 5: a second live run in the same work dir is refused
        b = subprocess.run(
            [sys.executable, TRAIN, _child(tmp_path, 2000), '--work-dir',
             work, '--cfg-options', *SMALL], cwd=tmp_path, env=_env(),
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=240)  # not refused: it would train 2000 iterations
        assert b.returncode != 0, b.stdout[-3000:]
        assert 'is in use by another training run' in b.stdout, \
            b.stdout[-3000:]
        assert f'pid {a.pid} on host {socket.gethostname()}' in b.stdout
        assert 'another --work-dir' in b.stdout
        assert 'Iter(train)' not in b.stdout  # refused before training
        assert a.poll() is None  # A unharmed
    finally:
        a.kill()
        a.wait()
        log_a.close()
    assert a.returncode == -signal.SIGKILL

    # the killed run's lock does not block; the scaled-down README pattern
    c = subprocess.run(
        [sys.executable, TRAIN, _child(tmp_path, 12), '--work-dir', work,
         '--cfg-options', *SMALL, *SHORT_BASE], cwd=tmp_path, env=_env(),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=600)
    assert c.returncode == 0, c.stdout[-3000:]
    assert ('param_scheduler.1 (PolyLR) ended at iteration 4 but '
            'train_cfg.max_iters is 12') in c.stdout, c.stdout[-3000:]
    assert ('default_hooks.checkpoint.interval was 20 (beyond the end of '
            'the run) and train_cfg.max_iters is 12: set to 12') in c.stdout
    lrs = [rec['lr'] for _, rec in sorted(_newest_scalars(work).items())]
    assert len(lrs) == 12
    # decaying over the whole run, not held at 0 after iteration 4
    assert all(lr > 0 for lr in lrs[:-1]), lrs
    assert all(x > y for x, y in zip(lrs[1:-1], lrs[2:])), lrs
    assert osp.isfile(osp.join(work, 'iter_12.pth'))


def test_schedule_in_absolute_steps_is_refused_or_kept_with_a_note(
        tmp_path):
    """The branches the runs above do not take, on the same config files:
    a cosine schedule with ``T_max`` that would train on at lr 0 is refused
    (both numbers and the fix named); the GenerativeDepth KITTI recipe's
    exponential decay over 25k of 30k iterations (a hold phase at 0.01x) is
    kept as written, with a note."""
    from mmengine.config import Config

    from mmdiff.apis import fit_schedule
    cfg = Config.fromfile(_child(tmp_path, 2000))  # the README's child
    cfg.param_scheduler[1] = dict(type='CosineAnnealingLR', T_max=570,
                                  by_epoch=False, begin=30, end=600)
    with pytest.raises(ValueError, match=r'param_scheduler\.1 '
                       r'\(CosineAnnealingLR\) ends at iteration 600 but '
                       r'train_cfg\.max_iters is 2000.*Fix: set '
                       r'param_scheduler\.1\.end=2000'):
        fit_schedule(cfg)
    kitti = Config.fromfile(osp.join(
        osp.dirname(TRAIN), '..', 'projects', 'GenerativeDepth', 'configs',
        'generative-depth_sd2-concat_8xb4-30k_kitti-352x704.py'))
    before = kitti.param_scheduler[1].end
    notes = fit_schedule(kitti)
    assert kitti.param_scheduler[1].end == before == 25000
    assert len(notes) == 1 and 'ends at iteration 25000 and ' \
        'train_cfg.max_iters is 30000' in notes[0] and \
        'kept as written' in notes[0]
