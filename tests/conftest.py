"""Fixtures shared by every test folder: one thread, repository tools run
in subprocesses (:func:`run_repo_tool`) or imported (:func:`load_module`),
demo runs."""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch


@pytest.fixture(scope='session', autouse=True)
def one_thread():
    """One intra-op thread for the whole test session (the one place that
    sets it): on a shared 2-core machine OpenMP threads oversubscribed by
    parallel jobs make tiny CPU steps several times slower (the converter
    tests took 130 s instead of 31 s under load, ~4x). Subprocesses
    (:func:`run_repo_tool`) set their own ``OMP_NUM_THREADS``."""
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


def load_module(path: str, name: str = None):
    """Import a file that is not in a package (a tool script, a helper file
    of the tests) as a fresh module; ``path`` relative to the repository
    root or absolute."""
    path = path if osp.isabs(path) else osp.join(ROOT, path)
    name = name or 'mmdiff_tests_' + osp.splitext(
        osp.relpath(path, ROOT))[0].replace(osp.sep, '_').replace('-', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def load_tool():
    """:func:`load_module`, for tests in any folder."""
    return load_module


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


def _logged_iters(work_dir: str) -> dict:
    """``{iter: record}`` of the training records (those with a ``loss``)
    in every run's ``vis_data/scalars.json`` under ``work_dir``."""
    out = {}
    for stamp in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    out[rec['iter']] = rec
    return out


@pytest.fixture(scope='session')
def logged_iters():
    """``logged_iters(work_dir) -> {iter: record}`` (losses, lr, ...)."""
    return _logged_iters
