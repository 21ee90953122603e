"""Shared by the project tests: tools/train.py + tools/test.py on a demo
config in a temporary cwd (4 iterations, batch 2, no validation while
training), the way a user runs them from a checkout."""
import glob
import json
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # `pytest` (importlib mode) without `python -m`
    sys.path.insert(0, ROOT)
import pytest  # noqa: E402

# A small demo set (8 train / 4 val images) keeps data generation and
# tools/test.py short on a shared CPU.
SMALL = [f'{split}_dataloader.dataset.{key}={num}'
         for split in ('train', 'test')
         for key, num in (('num_train', 8), ('num_val', 4))]


@pytest.fixture(scope='session')
def project_fast(fast_demo_options):
    """``--cfg-options`` of the project demo runs: tests/conftest.py's
    FAST_DEMO, 4 iterations, one checkpoint, the small demo set."""
    return fast_demo_options + [
        'train_cfg.max_iters=4', 'default_hooks.checkpoint.interval=4'
    ] + SMALL


@pytest.fixture(scope='session')
def train_test(run_tool, project_fast):
    """``train_and_test(config, cwd) -> (train log, metrics)``: train 4
    iterations, test the checkpoint."""

    def train_and_test(config: str, cwd: str) -> tuple:
        work_dir = osp.join(cwd, 'work_dir')
        proc = run_tool('tools/train.py', config, '--work-dir', work_dir,
                        '--cfg-options', *project_fast, cwd=cwd, timeout=900)
        log = proc.stdout + proc.stderr
        ckpt = osp.join(work_dir, 'iter_4.pth')
        assert osp.isfile(ckpt), log[-3000:]
        test_dir = osp.join(work_dir, 'test')
        run_tool('tools/test.py', config, ckpt, '--work-dir', test_dir,
                 '--cfg-options', *SMALL[2:], cwd=cwd, timeout=900)
        files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
        assert files, 'tools/test.py wrote no metrics json'
        with open(files[-1]) as f:
            metrics = json.load(f)
        return log, metrics

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
