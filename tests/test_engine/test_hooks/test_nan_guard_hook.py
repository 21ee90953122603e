"""Finding 2 of issue 14: the NaN guard's advice works as printed.

The probe: after a blow-up (lr 1e6) the guard pointed at the "last good
checkpoint", but that checkpoint already held the diverged weights, and on
``--resume`` a learning rate given with ``--cfg-options`` was silently
replaced by the checkpoint's. Here a run through ``tools/train.py`` starts
at a tiny learning rate that jumps to 1e6 (LinearLR warm-up), blows up, and
the command the guard prints is run as printed: it resumes from the last
checkpoint a finite loss followed, applies the config's learning rate (with
a log line) and trains on with finite losses to the end.
"""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import torch

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', '..', 'test_tools'))
from test_resume import (SEG_CFG, TRAIN, _env,  # noqa: E402
                         make_demo_data, tiny_options)


BLOW_UP = ['optim_wrapper.optimizer.lr=1e6',
           'param_scheduler.0.start_factor=1e-9',  # iteration 1: lr 1e-3
           'param_scheduler.0.end=2']              # iteration 2: lr 1e6


def test_blow_up_then_printed_command_trains_on(tmp_path, logged_iters):
    make_demo_data(tmp_path)
    work = str(tmp_path / 'work')
    cmd = [sys.executable, TRAIN, SEG_CFG, '--work-dir', work,
           '--cfg-options', *tiny_options(max_iters=6, ckpt_every=1),
           *BLOW_UP]
    run = subprocess.run(cmd, cwd=tmp_path, env=_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert run.returncode != 0, run.stdout[-3000:]
    assert 'Non-finite loss at iteration' in run.stdout, run.stdout[-3000:]
    failed_at = int(re.search(r'Non-finite loss at iteration (\d+)',
                              run.stdout).group(1))
    good = re.search(r'finite loss is (\S+);', run.stdout)
    assert good, run.stdout[-3000:]
    good = good.group(1)
    # the checkpoint pointed at predates the one the blow-up came from
    meta = torch.load(good, map_location='cpu', weights_only=False)['meta']
    assert meta['iter'] <= failed_at - 2
    assert all(torch.isfinite(v).all() for v in torch.load(
        good, map_location='cpu', weights_only=False)['state_dict'].values()
        if v.is_floating_point())
    printed = re.search(r'e\.g\.\n\s+(python .*)\n', run.stdout).group(1)
    again = shlex.split(printed)
    assert again[0] == 'python' and '--resume' in again
    rerun = subprocess.run([sys.executable] + again[1:], cwd=tmp_path,
                           env=_env(), text=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "the config's (with --cfg-options) are applied" in rerun.stdout
    assert re.search(r'lr: checkpoint 1e\+06 -> config 0\.001', rerun.stdout)
    after = {i: rec for i, rec in logged_iters(work).items()
             if i > meta['iter']}
    assert max(after) == 6
    assert all(rec['loss'] == rec['loss'] and abs(rec['loss']) < 1e3
               and rec['lr'] < 1e-2 for rec in after.values()), after


def test_verified_link_is_made_once_per_checkpoint(tmp_path):
    """Iterations between two checkpoints verify the same one: it is linked
    once, and no temporary name stays (rename() between two links of one
    file does nothing, so a second link attempt used to leave one per
    iteration)."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmdiff.engine.hooks.nan_guard_hook import NaNGuardHook
    ckpt = tmp_path / 'iter_2.pth'
    ckpt.write_bytes(b'weights')
    hub = MessageHub.get_instance('nan_guard_link_test')
    hub.update_info('last_ckpt', str(ckpt))
    runner = SimpleNamespace(message_hub=hub, work_dir=str(tmp_path))
    hook = NaNGuardHook()
    for _ in range(3):  # three finite iterations after the checkpoint
        hook._keep_verified(runner)
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth', 'last_finite.pth']
    assert os.path.samefile(tmp_path / 'last_finite.pth', ckpt)
