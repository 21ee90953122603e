"""Nothing lost: SIGKILL mid-run, ``--resume``, same losses; atomic saves.

The end-to-end test trains the demo seg config (64 px, batch 2, dropout and
random flips on, deterministic CPU) three times through ``tools/train.py``:
an uninterrupted run, a run killed with SIGKILL right after its first
checkpoint, and that run resumed with ``--resume``. The resumed run must log
the iterations after the checkpoint with the uninterrupted run's learning
rates and losses (to 1e-6) and end with the same weights, optimizer and
scheduler state. Both use ``mmdiff.AtomicCheckpointHook``.
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TRAIN = osp.join(REPO, 'tools', 'train.py')
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
MAX_ITERS, CKPT_EVERY = 4, 2





def tiny_options(max_iters: int = MAX_ITERS,
                 ckpt_every: int = CKPT_EVERY) -> list:
    """--cfg-options that make the demo seg config a seconds-long run."""
    ds = 'train_dataloader.dataset'
    return [
        f'train_cfg.max_iters={max_iters}',
        'train_dataloader.batch_size=2', f'{ds}.num_train=8',
        f'{ds}.num_val=2', f'{ds}.size=64',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.type=mmdiff.AtomicCheckpointHook',
        f'default_hooks.checkpoint.interval={ckpt_every}',
        'default_hooks.checkpoint.max_keep_ckpts=3',
        'randomness.seed=0', 'randomness.deterministic=True',
        'custom_hooks.0.steps=2', 'custom_hooks.0.size=64',  # demo VAE
    ]


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1',
               MKL_NUM_THREADS='1')
    env.pop('LOCAL_RANK', None)
    return env


def make_demo_data(root) -> None:
    """Write the data the tiny runs read, once, before they start."""
    from mmdiff.datasets.demo_data import ensure_demo_data
    ensure_demo_data('seg', root=osp.join(str(root), 'data', 'demo'),
                     num_train=8, num_val=2, size=64, seed=0)


def train_cmd(work_dir: str, *extra: str) -> list:
    return [sys.executable, TRAIN, SEG_CFG, '--work-dir', work_dir,
            *extra, '--cfg-options', *tiny_options()]


def _points_to(work_dir: str, ckpt: str) -> bool:
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() == ckpt
    except OSError:
        return False


def load_ckpt(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


def assert_same_state(a, b, where: str = '') -> None:
    """Recursively equal dicts/lists/tensors (tensors exactly)."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_state(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f'{where}[{i}]')
    else:
        assert a == b, where


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, logged_iters):
    full, killed = str(tmp_path / 'full'), str(tmp_path / 'killed')
    make_demo_data(tmp_path)
    # the killed run goes first so that it and the reference share the CPU
    proc = subprocess.Popen(train_cmd(killed), cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ref = subprocess.Popen(train_cmd(full), cwd=tmp_path, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    first = osp.join(killed, f'iter_{CKPT_EVERY}.pth')
    deadline = time.time() + 300
    while not _points_to(killed, first) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    # last_checkpoint is written after iter_N.pth is complete: kill now
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    out = ref.communicate()[0].decode()
    assert ref.returncode == 0, out[-3000:]

    # killed after the checkpoint, before the end
    assert osp.isfile(first)
    assert not osp.exists(osp.join(killed, f'iter_{MAX_ITERS}.pth'))
    with open(osp.join(killed, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == f'iter_{CKPT_EVERY}.pth'
    assert not [n for n in os.listdir(killed) if '.tmp-' in n]
    before = logged_iters(killed)
    assert max(before) < MAX_ITERS

    res = subprocess.run(train_cmd(killed, '--resume'), cwd=tmp_path,
                         env=_env(), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    # same iteration counter: the resumed run logs exactly CKPT_EVERY+1..
    runs = sorted(d for d in os.listdir(killed)
                  if osp.isdir(osp.join(killed, d, 'vis_data')))
    last_log = osp.join(killed, runs[-1], 'vis_data', 'scalars.json')
    with open(last_log) as f:
        resumed = {r['iter']: r for r in map(json.loads, f) if 'loss' in r}
    assert sorted(resumed) == list(range(CKPT_EVERY + 1, MAX_ITERS + 1))

    reference = logged_iters(full)
    assert sorted(reference) == list(range(1, MAX_ITERS + 1))
    for it, rec in resumed.items():
        # scheduler state: same learning rate; model+optimizer+RNG: same loss
        assert rec['lr'] == pytest.approx(reference[it]['lr'], rel=1e-12)
        assert rec['loss'] == pytest.approx(reference[it]['loss'], abs=1e-6,
                                            rel=0), f'iter {it}'

    # optimizer, scheduler and weights after the resumed part: identical
    a = load_ckpt(osp.join(full, f'iter_{MAX_ITERS}.pth'))
    b = load_ckpt(osp.join(killed, f'iter_{MAX_ITERS}.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == MAX_ITERS
    for key in ('state_dict', 'optimizer', 'param_schedulers'):
        assert_same_state(a[key], b[key], key)



# ---------------------------------------------------------------------------
# Atomic writes, on a toy mmengine Runner (seconds, no mmseg)
# ---------------------------------------------------------------------------
TOY_RUNNER = r"""
import os, signal, sys
import torch
from torch import nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
import mmdiff.engine  # registers mmdiff.AtomicCheckpointHook


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, mode='loss'):
        return dict(loss=self.linear(torch.stack(inputs)).pow(2).mean())


def build_runner(work_dir, hook_type, max_iters=2, max_keep_ckpts=1):
    data = [dict(inputs=torch.full((4, ), float(i))) for i in range(8)]
    return Runner(
        model=Toy(), work_dir=work_dir,
        train_dataloader=dict(
            dataset=data, sampler=dict(type='InfiniteSampler'),
            batch_size=2, collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(
            type=hook_type, by_epoch=False, interval=1,
            max_keep_ckpts=max_keep_ckpts)),
        default_scope='mmengine')


def half_write_then(action):
    # LocalBackend.put writes the bytes torch.save produced; write half of
    # them on the 2nd checkpoint, then die (SIGKILL) or fail (raise).
    from mmengine.fileio import LocalBackend
    orig, calls = LocalBackend.put, []

    def put(self, obj, filepath):
        calls.append(filepath)
        if len(calls) < 2:
            return orig(self, obj, filepath)
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
        if action == 'kill':
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError('disk full (simulated)')
    LocalBackend.put = put


if __name__ == '__main__':
    half_write_then('kill')
    build_runner(sys.argv[1], sys.argv[2]).train()
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    path = tmp_path / 'toy_runner.py'
    path.write_text(TOY_RUNNER)
    monkeypatch.syspath_prepend(str(tmp_path))
    from mmengine.fileio import LocalBackend
    # half_write_then patches LocalBackend.put: undo it after the test
    monkeypatch.setattr(LocalBackend, 'put', LocalBackend.put)
    import importlib
    module = importlib.import_module('toy_runner')
    yield path, module
    sys.modules.pop('toy_runner', None)


def _check_ckpt1_survives(work_dir):
    names = os.listdir(work_dir)
    assert 'iter_2.pth' not in names  # no truncated final file
    ckpt = load_ckpt(osp.join(work_dir, 'iter_1.pth'))  # previous: intact
    assert ckpt['meta']['iter'] == 1 and 'optimizer' in ckpt
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == 'iter_1.pth'


def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path, toy):
    """A real SIGKILL half-way through writing iter_2, max_keep_ckpts=1."""
    path, module = toy
    work_dir = str(tmp_path / 'kill')
    proc = subprocess.run(
        [sys.executable, str(path), work_dir, 'mmdiff.AtomicCheckpointHook'],
        cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    _check_ckpt1_survives(work_dir)
    leftovers = [n for n in os.listdir(work_dir) if '.tmp-' in n]
    assert len(leftovers) == 1  # the half-written temp file, hidden

    # the next run resumes from iter_1 and clears the temp file
    runner = module.build_runner(work_dir, 'mmdiff.AtomicCheckpointHook',
                                 max_iters=3)
    runner._resume = True
    runner.train()
    assert runner.iter == 3
    assert not [n for n in os.listdir(work_dir) if '.tmp-' in n]
    assert sorted(n for n in os.listdir(work_dir) if n.endswith('.pth')) \
        == ['iter_3.pth']


@pytest.mark.parametrize('where', ['put', 'torch.save'])
def test_failed_save_leaves_no_partial_file(tmp_path, toy, monkeypatch,
                                            where):
    """A save that raises mid-write: nothing at the final path."""
    _, module = toy
    if where == 'put':
        module.half_write_then('raise')
    else:
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            if isinstance(obj, dict) and obj.get('meta', {}).get('iter') == 2:
                f.write(b'PK\x03\x04 partial')  # some bytes, then failure
                raise RuntimeError('killed while pickling (simulated)')
            return real_save(obj, f, *args, **kwargs)
        monkeypatch.setattr(torch, 'save', save)
    work_dir = str(tmp_path / where)
    runner = module.build_runner(work_dir, 'mmdiff.AtomicCheckpointHook')
    with pytest.raises((OSError, RuntimeError), match='simulated'):
        runner.train()
    _check_ckpt1_survives(work_dir)
    assert not [n for n in os.listdir(work_dir) if '.tmp-' in n]


def test_plain_checkpoint_hook_would_truncate(tmp_path, toy):
    """Why the hook exists: mmengine's CheckpointHook, same failure, leaves a
    truncated iter_2.pth that last_checkpoint does not yet name, and with
    max_keep_ckpts=1 it already deleted iter_1.pth."""
    _, module = toy
    module.half_write_then('raise')
    work_dir = str(tmp_path / 'plain')
    runner = module.build_runner(work_dir, 'CheckpointHook')
    with pytest.raises(OSError, match='simulated'):
        runner.train()
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert not osp.exists(osp.join(work_dir, 'iter_1.pth'))
    with pytest.raises(Exception):
        load_ckpt(osp.join(work_dir, 'iter_2.pth'))
