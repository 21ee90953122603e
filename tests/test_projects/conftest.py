"""Shared by the project tests: tools/train.py + tools/test.py on a demo
config in a temporary cwd (4 iterations, batch 2, no validation while
training), the way a user runs them from a checkout."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # `pytest` (importlib mode) without `python -m`
    sys.path.insert(0, ROOT)
# A small demo set (8 train / 4 val images) keeps data generation and
# tools/test.py short on a shared CPU.
SMALL = [f'{split}_dataloader.dataset.{key}={num}'
         for split in ('train', 'test')
         for key, num in (('num_train', 8), ('num_val', 4))]
FAST = ['train_cfg.max_iters=4', 'train_dataloader.batch_size=2',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.checkpoint.interval=4',
        'default_hooks.logger.interval=1',
        # the demos' VAE: a 2-step stand-in (the documented runs train 200)
        'custom_hooks.0.steps=2', 'custom_hooks.0.size=64'] + SMALL


def run_tool(tool: str, *args: str, cwd: str) -> str:
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='2')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', tool), *args], cwd=cwd,
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (
        f'{tool} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def train_and_test(config: str, cwd: str) -> tuple:
    """Train 4 iterations, test the checkpoint; (train log, metrics)."""
    work_dir = osp.join(cwd, 'work_dir')
    log = run_tool('train.py', config, '--work-dir', work_dir,
                   '--cfg-options', *FAST, cwd=cwd)
    ckpt = osp.join(work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt), log[-3000:]
    test_dir = osp.join(work_dir, 'test')
    run_tool('test.py', config, ckpt, '--work-dir', test_dir,
             '--cfg-options', *SMALL[2:], cwd=cwd)
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    assert files, 'tools/test.py wrote no metrics json'
    with open(files[-1]) as f:
        metrics = json.load(f)
    return log, metrics


import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)  # tiny models on a shared CPU


@pytest.fixture(scope='session')
def train_test():
    """``train_and_test(config, cwd) -> (train log, metrics)``."""
    return train_and_test


@pytest.fixture
def build_from_config():
    """Build a config's host model (its custom_imports applied)."""
    def build(path: str):
        from mmengine.config import Config
        from mmengine.registry import MODELS, DefaultScope
        from mmengine.utils import import_modules_from_strings
        cfg = Config.fromfile(path)
        import_modules_from_strings(**cfg.custom_imports)
        # the demos' pretrained VAE is made by a training hook; random here
        cfg.model.backbone.pop('vae_weights', None)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(cfg.model)
        model.init_weights()
        return cfg, model
    return build
