"""Stop training at the first non-finite input or loss, naming the iteration.

mmdet's ``CheckInvalidLossHook`` checks only every ``interval`` (50)
iterations, only ``outputs['loss']``, through an ``assert`` (gone under
``python -O``) whose message is ``None``. :class:`NaNGuardHook` checks every
iteration, both the batch and every logged loss term, and raises one error
that says where and what to do.
"""
import math
import os
import os.path as osp
import shlex
import sys
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook

from mmdiff.registry import HOOKS
from mmdiff.utils.fileio import atomic_write_text, temp_sibling

#: Hard link to the newest checkpoint verified by a finite loss after it.
LAST_FINITE = 'last_finite.pth'


def _non_finite_images(inputs, data_samples) -> Optional[list]:
    """Paths (or indices) of floating-point images holding NaN/inf."""
    if isinstance(inputs, torch.Tensor):
        inputs = list(inputs) if inputs.ndim == 4 else [inputs]
    if not isinstance(inputs, Sequence):
        return None
    bad = []
    for i, img in enumerate(inputs):
        if not isinstance(img, torch.Tensor) or not img.is_floating_point():
            continue
        if not torch.isfinite(img).all():
            name = f'#{i}'
            if data_samples is not None and i < len(data_samples):
                name = data_samples[i].metainfo.get('img_path', name)
            bad.append(name)
    return bad


@HOOKS.register_module()
class NaNGuardHook(Hook):
    """Raise ``FloatingPointError`` on NaN/inf inputs or losses.

    Runs before the logger and checkpoint hooks (priority ``ABOVE_NORMAL``),
    so the bad iteration is neither logged as a number nor checkpointed.
    The checkpoint saved just before it is not trusted either (its weights
    gave the non-finite loss): the guard keeps ``last_finite.pth`` (a hard
    link, no copy) to the newest checkpoint that a finite loss followed,
    points ``last_checkpoint`` at it on failure, and prints the command
    that resumes from it at a lower learning rate.

    Usage::

        custom_hooks = [dict(type='mmdiff.NaNGuardHook')]

    Args:
        check_inputs (bool): Check floating-point images of each batch before
            the forward pass (integer images cannot hold NaN). Defaults to
            True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, check_inputs: bool = True) -> None:
        self.check_inputs = check_inputs
        self._verified: Optional[str] = None
        self._verified_from: Optional[str] = None  # the checkpoint linked

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        """Refuse a batch with non-finite floating-point images."""
        if not self.check_inputs or not isinstance(data_batch, dict):
            return
        bad = _non_finite_images(data_batch.get('inputs'),
                                 data_batch.get('data_samples'))
        if bad:
            raise FloatingPointError(
                f'NaN/inf in the input images at iteration {runner.iter + 1}'
                f' (batch {batch_idx}): {bad}. Training stopped before the '
                'forward pass. Fix: repair or drop these files, or the '
                'transform that produced non-finite values.')

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        """Refuse non-finite loss terms; keep the last verified checkpoint.

        A finite loss at iteration ``n`` was computed with the weights the
        optimizer left after iteration ``n - 1``: so the newest checkpoint
        saved before this iteration is verified and linked as
        ``last_finite.pth``. After a non-finite loss the newest checkpoint
        is not trusted (its weights produced the loss) and the advice
        points at ``last_finite.pth``.
        """
        bad = non_finite_terms(outputs) if outputs else {}
        if not bad:
            self._keep_verified(runner)
            return
        good = self._last_finite(runner)
        raise FloatingPointError(
            f'Non-finite loss at iteration {runner.iter + 1} (batch '
            f'{batch_idx}): {bad}. Training stopped; this iteration was '
            'neither logged nor checkpointed. '
            + resume_advice(runner, good))

    def _keep_verified(self, runner) -> None:
        last = current_checkpoint(runner,
                                  runner.message_hub.get_info('last_ckpt'))
        if not last or last == self._verified_from:
            return
        link = osp.join(osp.dirname(last), LAST_FINITE)
        tmp = temp_sibling(link)  # removed by remove_stale_temps if killed
        try:
            os.link(last, tmp)  # no copy: survives max_keep_ckpts deletion
            os.replace(tmp, link)
        except OSError:  # no hard links here: remember the path only
            link = last
        finally:
            # rename() between two links of one file does nothing: the
            # temporary name would stay
            if osp.lexists(tmp):
                os.remove(tmp)
        self._verified, self._verified_from = link, last

    def after_train(self, runner) -> None:
        """The last checkpoint has no loss after it: trust it if the
        weights it holds are finite (DiffusersExportHook publishes its
        export by the same test)."""
        if weights_finite(runner.model):
            self._keep_verified(runner)

    def _last_finite(self, runner) -> Optional[str]:
        good = self._verified
        if good is None or not osp.isfile(good):
            return None
        # plain `--resume` (latest in the work dir) must pick it too
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), good)
        return good


def weights_finite(model) -> bool:
    """Are all floating-point parameters and buffers of ``model`` finite?"""
    return all(torch.isfinite(t).all() for t in
               list(model.parameters()) + list(model.buffers())
               if t.is_floating_point())


def checkpoint_dir(runner) -> str:
    """The folder this run saves its checkpoints in: the checkpoint hook's
    ``out_dir`` (set from the runner's work dir in its ``before_train``),
    else the runner's work dir."""
    from mmengine.hooks import CheckpointHook
    for hook in getattr(runner, 'hooks', ()):
        out_dir = getattr(hook, 'out_dir', None)
        if isinstance(hook, CheckpointHook) and isinstance(out_dir, str) \
                and osp.isdir(out_dir):
            return out_dir
    return runner.work_dir


def current_checkpoint(runner, path: Optional[str]) -> Optional[str]:
    """``path`` (e.g. the ``last_ckpt`` a resumed checkpoint's message hub
    restored) as a file of THIS run's checkpoint folder, or None.

    A checkpoint stores absolute paths: in a copied or moved work dir they
    name the original one. Only the file name is trusted; a file of that
    name outside this run's folder is never touched.
    """
    if not path:
        return None
    local = osp.join(checkpoint_dir(runner), osp.basename(path))
    return local if osp.isfile(local) else None


def non_finite_terms(outputs: dict) -> dict:
    bad = {}
    for name, value in outputs.items():
        if isinstance(value, torch.Tensor):
            if value.numel() == 1:
                value = value.item()
            elif value.is_floating_point() and \
                    not torch.isfinite(value).all():
                bad[name] = 'non-finite values'
                continue
            else:
                continue
        if isinstance(value, float) and not math.isfinite(value):
            bad[name] = value
    return bad


def _run_lr(runner) -> Optional[float]:
    try:
        return float(runner.cfg.optim_wrapper.optimizer.lr)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _suggested_lr(runner) -> Optional[float]:
    """The config file's lr if this run raised it, else a tenth of it."""
    lr = _run_lr(runner)
    if lr is None:
        return None
    try:
        from mmengine.config import Config
        file_lr = float(Config.fromfile(runner.cfg.filename)
                        .optim_wrapper.optimizer.lr)
    except Exception:  # no file, no optimizer.lr in it, ...
        file_lr = None
    return file_lr if file_lr is not None and file_lr < lr else lr / 10


def _command(good: Optional[str], lr: Optional[float]) -> Optional[list]:
    """This run's ``tools/train.py`` command, resuming ``good`` at ``lr``."""
    argv = list(sys.argv)
    if not argv or not argv[0].endswith('train.py'):
        return None
    out, i, opts_at = [], 1, None
    while i < len(argv):
        tok = argv[i]
        if tok == '--resume':
            if i + 1 < len(argv) and not argv[i + 1].startswith('-'):
                i += 1  # its checkpoint
        elif tok.startswith('--resume='):
            pass
        elif lr is not None and tok.startswith('optim_wrapper.optimizer.lr='):
            pass
        else:
            if tok == '--cfg-options':
                opts_at = len(out)
            out.append(tok)
        i += 1
    if lr is not None:
        if opts_at is None:
            out += ['--cfg-options']
            opts_at = len(out) - 1
        out.insert(opts_at + 1, f'optim_wrapper.optimizer.lr={lr:g}')
    if good is not None:
        out += ['--resume', good]
    return ['python', argv[0]] + out


def resume_advice(runner, good: Optional[str]) -> str:
    """What to do after a non-finite loss, with a command to run."""
    lr = _suggested_lr(runner)
    cmd = _command(good, lr)
    where = (f'The last checkpoint whose weights gave a finite loss is '
             f'{good}; newer ones come from the diverging steps. '
             if good else 'No checkpoint with verified finite weights was '
             'written yet: start again. ')
    run_lr = _run_lr(runner)
    fix = ('Fix: lower the learning rate'
           + (f' (this run: {run_lr:g})' if run_lr is not None else '')
           + ' or enable optim_wrapper.clip_grad, check the data of this '
           'batch, or with --amp use a dynamic loss scale')
    if cmd is None:
        resume = f' --resume {good}' if good else ''
        return (where + fix + '; then run tools/train.py CONFIG' + resume
                + ' --cfg-options optim_wrapper.optimizer.lr=LOWER_LR.')
    return (where + fix + '; e.g.\n    ' + shlex.join(cmd) + '\n(a changed '
            'learning rate is applied on --resume, with a log line).')
