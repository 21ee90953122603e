"""One start-up sequence for the entry points (tools/train.py, test.py).

:func:`prepared_runner` runs, in order, what both tools did by hand: the
schedule fit (train), the environment and checkpoint pre-checks before any
build, the one-run-per-work-dir lock (train), CPU ``torchrun`` set-up, the
Runner build, the quiet optimizer log (train), :func:`check_before_run` and
the resume hook (train). The tools parse their arguments, edit the config
and call the runner it yields.
"""
import contextlib
import logging
from typing import Iterator

from mmengine.config import Config
from mmengine.logging import print_log

from mmdiff.utils.checkpoint import register_checkpoint_safe_globals
from mmdiff.utils.dist import setup_cpu_distributed
from mmdiff.utils.preflight import check_environment
from mmdiff.utils.quiet_logs import quiet_optimizer_logs
from mmdiff.utils.work_dir import work_dir_lock
from .checkpoint_checks import precheck_checkpoint
from .run_checks import check_before_run
from .schedule_checks import fit_schedule

MODES = ('train', 'test')


@contextlib.contextmanager
def prepared_runner(cfg: Config, mode: str) -> Iterator:
    """Check ``cfg``, build its Runner and check it; yield the Runner.

    Args:
        cfg (Config): The complete config (command-line options applied).
        mode (str): ``'train'`` (fits the schedule, holds the work dir's
            lock while the block runs, registers
            :class:`mmdiff.engine.ResumeOptimSettingsHook` when resuming) or
            ``'test'``.

    Yields:
        Runner: Built and checked, before any step.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    train = mode == 'train'
    register_checkpoint_safe_globals()
    # a schedule ending before max_iters: stretched (or refused), logged
    notes = fit_schedule(cfg) if train else []
    # pipeline packages (Albu), FSDP/DeepSpeed needs: fail before the build
    check_environment(cfg, mode)
    precheck_checkpoint(cfg)  # intact and weights-only, before any build
    lock = work_dir_lock(cfg.work_dir) if train else contextlib.nullcontext()
    with lock:  # one live training run per work dir
        setup_cpu_distributed(cfg)  # torchrun without GPUs: gloo, CPU DDP
        runner = _build_runner(cfg)
        for note in notes:
            print_log(note, logger='current', level=logging.WARNING)
        if train:  # one line instead of one per parameter
            quiet_optimizer_logs(runner)
        # neck/head vs backbone channels, checkpoint present/intact/same
        check_before_run(runner, mode=mode)
        if train and cfg.get('resume', False):
            # the config's optimizer settings (lr, ...) win over the
            # checkpoint's
            from mmdiff.engine import ResumeOptimSettingsHook
            runner.register_hook(ResumeOptimSettingsHook())
        yield runner


def _build_runner(cfg: Config):
    """``Runner.from_cfg``, or the config's ``runner_type`` (as mmdet's and
    mmseg's tools)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg \
        else RUNNERS.build(cfg)
