"""A ``CheckpointHook`` whose files are never seen half-written.

mmengine's ``CheckpointHook`` saves through ``Runner.save_checkpoint`` ->
``mmengine.runner.save_checkpoint`` -> ``LocalBackend.put``, which opens the
final path with ``'wb'`` and writes into it; it also deletes the oldest kept
checkpoint *before* writing the new one. A kill during the write therefore
leaves a truncated ``iter_N.pth`` (which ``--resume`` then picks through
``last_checkpoint``) and may leave no good checkpoint at all.

:class:`AtomicCheckpointHook` keeps every behaviour of ``CheckpointHook``
but, on local disks:

* writes ``.iter_N.pth.tmp-<pid>-<token>`` in the same folder, fsyncs it
  and ``os.replace``s it onto ``iter_N.pth`` (atomic on POSIX and Windows;
  :func:`mmdiff.utils.fileio.atomic_write`);
* rewrites ``last_checkpoint`` the same way, after the checkpoint is in place
  (a kill between the two leaves ``last_checkpoint`` on the previous one);
* removes the temp files of killed saves when training starts again;
* deletes checkpoints beyond ``max_keep_ckpts`` only after the new one is in
  place;
* stores the torch (and CUDA) random state in the checkpoint and restores it
  on resume, so dropout after ``--resume`` draws what an uninterrupted run
  draws. numpy/python ``random`` need no saving: they only drive the data
  pipeline, which mmengine's iteration loop replays when it skips the
  already-trained batches on resume.

Use it in place of the default checkpoint hook::

    default_hooks = dict(checkpoint=dict(
        type='mmdiff.AtomicCheckpointHook', by_epoch=False, interval=1000))

Remote backends (``backend_args`` / ``out_dir`` on Petrel, ...),
FlexibleRunner strategies (FSDP, DeepSpeed) and ``save_best`` checkpoints
fall back to ``CheckpointHook``'s plain writes.
"""
import os
import os.path as osp
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook

from mmdiff.registry import HOOKS
from mmdiff.utils.fileio import (atomic_write, atomic_write_text,
                                 remove_stale_temps, temp_sibling)

RNG_KEY = 'mmdiff_rng_state'


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic local writes and saved RNG state.

    Args:
        save_rng_state (bool): Store the torch/CUDA generator states in the
            checkpoint (key ``'mmdiff_rng_state'``) and restore them when
            resuming. Defaults to True.
        **kwargs: Every ``mmengine.hooks.CheckpointHook`` argument.
    """

    def __init__(self, *args, save_rng_state: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_rng_state = save_rng_state

    def before_train(self, runner) -> None:
        """Set up as ``CheckpointHook``; drop temp files of killed saves;
        read the restored best checkpoints in this run's folder."""
        super().before_train(runner)
        if self._is_local(runner):
            self._best_in_this_dir(runner)
        if self._is_local(runner) and is_main_process():
            # files only: a temporary folder in the work dir may be a
            # complete export its hook recovers (DiffusersExportHook)
            remove_stale_temps(self.out_dir, files_only=True)

    def _best_in_this_dir(self, runner) -> None:
        """``save_best`` restores the previous best checkpoint as the
        absolute path it had when it was saved, and deletes that file when a
        new best is found: in a copied or moved work dir that is the
        ORIGINAL dir's file. Read it by name in this run's ``out_dir``
        instead (the copy's own file), in the hook and the message hub."""
        def here(path):
            return None if path is None else osp.join(
                self.out_dir, osp.basename(str(path)))

        if getattr(self, 'best_ckpt_path', None) is not None:
            self.best_ckpt_path = here(self.best_ckpt_path)
            runner.message_hub.update_info('best_ckpt', self.best_ckpt_path)
        for key, path in (getattr(self, 'best_ckpt_path_dict', None)
                          or {}).items():
            if path is not None:
                self.best_ckpt_path_dict[key] = here(path)
                runner.message_hub.update_info(f'best_ckpt_{key}',
                                               here(path))

    # -- random state --------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the torch random state to the checkpoint being saved."""
        if not self.save_rng_state:
            return
        state = dict(torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[RNG_KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the random state of a checkpoint being resumed."""
        state = checkpoint.get(RNG_KEY)
        # only on --resume: loading weights to fine-tune keeps the new seed
        resuming = getattr(runner, '_resume', False)
        if not self.save_rng_state or state is None or not resuming:
            return
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            states = state['cuda']
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)

    # -- atomic save -----------------------------------------------------
    def _is_local(self, runner=None) -> bool:
        """Plain local files written by ``Runner.save_checkpoint``.

        FlexibleRunner strategies (FSDP, DeepSpeed) save through their own
        code (DeepSpeed writes folders): those keep CheckpointHook's writes.
        """
        return isinstance(self.file_backend, LocalBackend) and \
            self.file_client_args is None and \
            not hasattr(runner, 'strategy')

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """``CheckpointHook._save_checkpoint_with_step``, made atomic."""
        if not self._is_local(runner):
            return super()._save_checkpoint_with_step(runner, step, meta)

        ckpt_filename = self.filename_tmpl.format(step)
        final_path = osp.join(self.out_dir, ckpt_filename)
        # bookkeeping first, as CheckpointHook does, so that the message hub
        # saved inside the checkpoint knows it; deletion after the write
        dropped = self._update_kept(runner, step)
        self.last_ckpt = final_path
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        def write(tmp_path: str) -> None:
            runner.save_checkpoint(
                self.out_dir,
                osp.basename(tmp_path),
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)

        if not is_main_process():
            write(temp_sibling(final_path))  # master_only: writes nothing
            return
        atomic_write(final_path, write,
                     action=f'saving checkpoint {ckpt_filename}')
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          final_path)
        for old in dropped:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)

    def _update_kept(self, runner, step: int) -> list:
        """Record ``step`` as kept; return the steps to delete."""
        if self.max_keep_ckpts <= 0:
            return []
        if self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step:
            return []
        dropped = []
        while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
            dropped.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return dropped
