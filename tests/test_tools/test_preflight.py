"""tools/train.py refuses, before building anything, a config that cannot
run here: a pipeline step whose package is missing (Albu without
albumentations), FSDP/DeepSpeed overlays without GPUs or deepspeed. The
checks run on the real reference configs (SD1.5 ids: had the model been
built, the run would have failed later, on the download)."""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mmdiff.utils import preflight

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NYU = osp.join(ROOT, 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py')
VPD = osp.join(ROOT, 'configs/vpd')
FSDP = osp.join(VPD, 'vpd_sd15-fpn_fsdp-8xb2-80k_ade20k-512x512.py')
DEEPSPEED = osp.join(VPD,
                     'vpd_sd15-fpn_deepspeed-zero2-8xb2-80k_ade20k-512x512.py')


def _train(config: str, tmp_path, hide: str = '') -> tuple:
    """tools/train.py with ``hide`` made unimportable; (stderr, wall
    seconds, work dir)."""
    work = str(tmp_path / 'work')
    code = (
        'import sys, runpy\n'
        f'if {hide!r}: sys.modules[{hide!r}] = None\n'
        f'sys.argv = ["train.py", {config!r}, "--work-dir", {work!r}]\n'
        f'runpy.run_path({osp.join(ROOT, "tools/train.py")!r}, '
        'run_name="__main__")\n')
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path),
                          env=env, capture_output=True, text=True,
                          timeout=300)
    elapsed = time.perf_counter() - start
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stderr, elapsed, work


def test_missing_albumentations_fails_before_the_build(tmp_path):
    err, elapsed, work = _train(NYU, tmp_path, hide='albumentations')
    assert 'ImportError' in err and 'Albu' in err
    assert 'bash tools/setup_env.sh --datasets' in err
    assert not osp.exists(work)  # no Runner: no work dir, no model
    # imports (torch, mmseg) and the config, then the check: no model build
    print(f'albumentations refusal after {elapsed:.1f} s (process wall)')


@pytest.mark.parametrize('config', [FSDP, DEEPSPEED],
                         ids=['fsdp', 'deepspeed'])
def test_strategy_overlays_refused_without_gpu(config):
    """The same check_environment call tools/train.py makes before the
    Runner (the subprocess test above shows where it runs)."""
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU: the overlays may run')
    cfg = Config.fromfile(config)
    with pytest.raises((RuntimeError, ImportError)) as info:
        preflight.check_environment(cfg, 'train')
    err = str(info.value)
    assert 'needs NVIDIA GPUs (CUDA)' in err
    if info.type is ImportError:  # DeepSpeed without the extra: that first
        assert 'bash tools/setup_env.sh --deepspeed' in err
    else:  # the fix: GPUs, or the same recipe without the overlay
        assert 'vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py' in err
    preflight.check_environment(cfg, 'test')  # tools/test.py: no strategy


def test_deepspeed_missing_names_the_extra(monkeypatch):
    cfg = Config.fromfile(DEEPSPEED)
    real = preflight._installed
    monkeypatch.setattr(preflight, '_installed',
                        lambda m: m != 'deepspeed' and real(m))
    with pytest.raises(ImportError, match='requirements/deepspeed.txt'):
        preflight.check_environment(cfg, 'train')


def test_check_is_quick():
    """The check itself: milliseconds on a loaded config."""
    cfg = Config.fromfile(NYU)
    start = time.perf_counter()
    preflight.check_environment(cfg, 'train')  # albumentations installed
    preflight.check_environment(cfg, 'test')
    assert time.perf_counter() - start < 1.0
