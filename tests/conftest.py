"""Fixtures shared by every test folder."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread for a module: on a shared 2-core machine OpenMP
    threads oversubscribed by parallel jobs make tiny CPU steps ~40x slower
    (converters: 31 s instead of 130 s under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- demo checkpoints, trained once per test session -----------------------
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIGS = osp.join(ROOT, 'configs', 'demo')
# Small and quick: 2-image batches, no validation inside training, the demos'
# VAE a 2-step stand-in (the documented runs train 200).
FAST_DEMO = ['train_dataloader.batch_size=2', 'val_cfg=None',
             'val_dataloader=None', 'val_evaluator=None',
             'default_hooks.checkpoint.interval=2',
             'default_hooks.logger.interval=1',
             'custom_hooks.0.steps=2', 'custom_hooks.0.size=64']


def run_repo_tool(tool: str, *args: str, cwd: str, check: bool = True,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """``python <repo>/<tool> args`` in ``cwd`` (2 threads, warnings off);
    asserts success unless ``check`` is False."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='2')
    tool = tool if osp.isabs(tool) else osp.join(ROOT, tool)
    proc = subprocess.run([sys.executable, tool, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f'{tool} {args} failed:\n{proc.stdout[-3000:]}\n'
            f'{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='session')
def run_tool():
    """:func:`run_repo_tool`, for tests in any folder."""
    return run_repo_tool


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory):
    """``get(name) -> (cwd, work_dir, log)``: the demo config ``name`` trained
    4 iterations with tools/train.py, once per session, when first asked for
    (checkpoints iter_2.pth and iter_4.pth; data and VAE under cwd/data)."""
    cwd = str(tmp_path_factory.mktemp('demos'))
    runs = {}

    def get(name):
        if name not in runs:
            work_dir = osp.join(cwd, 'work_dirs', name[:-3])
            proc = run_repo_tool(
                'tools/train.py', osp.join(DEMO_CONFIGS, name), '--work-dir',
                work_dir, '--cfg-options', 'train_cfg.max_iters=4',
                *FAST_DEMO, cwd=cwd)
            runs[name] = (cwd, work_dir, proc.stdout + proc.stderr)
        return runs[name]

    return get


@pytest.fixture(scope='session')
def fast_demo_options():
    """``--cfg-options`` that make a demo run tiny (see FAST_DEMO)."""
    return list(FAST_DEMO)
