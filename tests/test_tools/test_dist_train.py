"""Distributed training through ``tools/dist_train.sh`` (torchrun, gloo, CPU).

The demo seg config trains 3 iterations in two ways, concurrently:

* 2 processes x batch 2 (``tools/dist_train.sh CONFIG 2``, DDP over gloo);
* 1 process  x batch 4 (``tools/train.py``), the same total batch.

A probe hook (written to the tmp dir, loaded through ``custom_imports``)
stores each rank's per-iteration loss and final parameters. Checked:

* both ranks end with bit-identical parameters (DDP all-reduces gradients,
  every rank applies the same update);
* the mean of the two ranks' losses equals the 1-process loss: at the first
  iteration to ``FIRST_RTOL`` = 1e-6, later to ``LOSS_RTOL`` = 1e-4; final
  parameters agree to the sum of the learning rates used. Why: with the
  InfiniteSampler (same seed) rank r reads samples r, r+2, ... of the
  one-process order, so both runs see the same 4 images per step; the
  cross-entropy is a mean over equally many pixels, so the mean of two
  half-batch losses is the full-batch loss and the all-reduced gradient mean
  is the full-batch gradient. Only float32 summation order differs, so the
  first loss agrees to rounding. Afterwards AdamW's first steps are
  ``lr * g / |g|`` per coordinate: a coordinate whose gradient is at rounding
  level can step +lr in one run and -lr in the other, which is why later
  losses drift to ~1e-5 relative (measured 1.5e-6, 2.2e-5 at iterations 2,
  3) and parameters to at most ``sum(lr)``. Dropout and random flips draw
  per process, so they are off here (``dropout_ratio=0``, flip ``prob=0``).

FlexibleRunner strategies (FSDP, DeepSpeed ZeRO-2) are GPU configs: this file
builds what can be built on CPU.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
ITERS = 3
FIRST_RTOL = 1e-6
LOSS_RTOL = 1e-4

PROBE = '''
import os
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Keep this rank's losses; save them with the final parameters."""

    def before_train(self, runner):
        self.losses, self.lrs = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(float(outputs['loss']))
        self.lrs.append(max(runner.optim_wrapper.get_lr()['lr']))

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save(dict(losses=self.losses, lrs=self.lrs, world=runner.world_size,
                        state={k: v.detach().clone() for k, v in
                               model.state_dict().items()}),
                   os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))
'''

CONFIG = f'''
_base_ = [{SEG_CFG!r}]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets', 'rank_probe'],
    allow_failed_imports=False)
custom_hooks = [dict(type='RankProbeHook')]
'''


def tiny_options(batch_size: int) -> list:
    ds = 'train_dataloader.dataset'
    return [
        f'train_cfg.max_iters={ITERS}', f'train_dataloader.batch_size='
        f'{batch_size}', f'{ds}.num_train=8', f'{ds}.num_val=2',
        f'{ds}.size=64', f'{ds}.pipeline.2.prob=0.0',
        'model.decode_head.dropout_ratio=0.0',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.logger.interval=1',
        f'default_hooks.checkpoint.interval={ITERS}',
        'randomness.seed=0', 'randomness.deterministic=True',
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Run the 1- and 2-process trainings once for the tests below."""
    from mmdiff.datasets.demo_data import ensure_demo_data
    tmp = tmp_path_factory.mktemp('dist')
    ensure_demo_data('seg', root=str(tmp / 'data' / 'demo'), num_train=8,
                     num_val=2, size=64, seed=0)
    (tmp / 'rank_probe.py').write_text(PROBE)
    cfg = tmp / 'probe_cfg.py'
    cfg.write_text(CONFIG)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, str(tmp)]),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(free_port()))
    for key in ('LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                'MASTER_PORT'):
        env.pop(key, None)
    two = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '2',
         '--work-dir', str(tmp / 'two'), '--cfg-options',
         *tiny_options(2)], cwd=tmp, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    one = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(cfg),
         '--work-dir', str(tmp / 'one'), '--cfg-options', *tiny_options(4)],
        cwd=tmp, env=env, capture_output=True, text=True)
    out_two = two.communicate()[0].decode()
    assert two.returncode == 0, out_two[-4000:]
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]

    def load(*parts):
        return torch.load(tmp.joinpath(*parts), weights_only=True)
    return dict(one=load('one', 'rank0.pth'), r0=load('two', 'rank0.pth'),
                r1=load('two', 'rank1.pth'), dir=tmp, log=out_two)


def test_two_processes_train(runs):
    assert runs['r0']['world'] == runs['r1']['world'] == 2
    assert runs['one']['world'] == 1
    assert len(runs['r0']['losses']) == ITERS
    assert all(torch.isfinite(torch.tensor(runs['r0']['losses'])))
    # rank 0 wrote the checkpoint and the logs, rank 1 nothing
    assert osp.isfile(runs['dir'] / 'two' / f'iter_{ITERS}.pth')
    ckpt = torch.load(runs['dir'] / 'two' / f'iter_{ITERS}.pth',
                      weights_only=True)
    for k, v in runs['r0']['state'].items():
        assert torch.equal(ckpt['state_dict'][k], v), k


def test_ranks_agree_exactly(runs):
    a, b = runs['r0']['state'], runs['r1']['state']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # they did see different halves of the batch
    assert runs['r0']['losses'] != runs['r1']['losses']


def test_matches_one_process_with_same_total_batch(runs):
    one = torch.tensor(runs['one']['losses'], dtype=torch.float64)
    two = (torch.tensor(runs['r0']['losses'], dtype=torch.float64) +
           torch.tensor(runs['r1']['losses'], dtype=torch.float64)) / 2
    rels = ((two - one).abs() / one.abs()).tolist()
    print(f'relative loss difference 1 vs 2 processes per iter: {rels}')
    rel = max(rels)
    assert rels[0] <= FIRST_RTOL
    assert rel <= LOSS_RTOL
    worst = max((runs['one']['state'][k].float() - v.float()).abs().max()
                .item() for k, v in runs['r0']['state'].items()
                if v.is_floating_point())
    bound = sum(runs['one']['lrs'])
    print(f'max parameter difference 1 vs 2 processes: {worst:.3e} '
          f'(bound sum(lr) = {bound:.3e})')
    assert worst <= bound
