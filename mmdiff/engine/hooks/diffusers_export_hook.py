"""Hand a pretrained U-Net to the backbones at every checkpoint.

At each checkpoint mmengine saves (in ``before_save_checkpoint``, the last
hook to run there: mmengine 0.10 has no after-save hook point),
:class:`DiffusersExportHook` writes
the U-Net and VAE as a diffusers folder (``<work_dir>/diffusers`` by
default, replaced atomically), which every mmdiff backbone config loads
with ``model.backbone.pretrained=FOLDER``, and a grid of DDIM samples
(``<work_dir>/samples/iter_<N>.png``) so the user sees what the model
learned (caption-conditioned: prompted with the first captions of the
training set, listed in ``mmdiff_pretrain.json``). With mmengine's
``EMAHook`` the checkpoint's ``state_dict`` holds the EMA weights
(``EMAHook.before_save_checkpoint`` swaps them in), so the EMA U-Net is
what is exported and sampled.

The export of a checkpoint is staged beside the folder (complete, not yet
in place) and replaces it only once the checkpoint is trusted by the rule
:class:`~mmdiff.engine.hooks.NaNGuardHook` keeps ``last_finite.pth`` by: a
finite loss computed with its weights (the next iteration's), or, for the
last checkpoint of the run, finite weights. After a divergence the folder
keeps the last trusted export. On ``--resume`` a complete export a killed
publish left aside (``.diffusers.old-*`` / ``.diffusers.tmp-*``) is
restored, the newest one; the staged export of the resumed checkpoint is
published after the resumed run's first finite loss.
"""
import logging
import os.path as osp
import shutil
from typing import Optional

import cv2
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdiff.engine.hooks.nan_guard_hook import (non_finite_terms,
                                                weights_finite)
from mmdiff.registry import HOOKS
from mmdiff.utils.fileio import atomic_write


def _imwrite(path: str, bgr) -> None:
    ok, buf = cv2.imencode('.png', bgr)
    if not ok:
        raise OSError(f'OpenCV could not encode {path}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _remove_folder(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _first_captions(runner, num: int) -> list:
    """The captions of the first ``num`` training samples (cycled when the
    set is smaller; '' where a sample has none)."""
    dataset = runner.train_dataloader.dataset
    n = len(dataset)
    return [str(dataset.get_data_info(i % n).get('caption', ''))
            for i in range(num)]


@HOOKS.register_module()
class DiffusersExportHook(Hook):
    """Export a :class:`~mmdiff.models.DiffusionPretrainer` at each save.

    Args:
        out_dir (str, optional): The diffusers folder. Defaults to None
            (``<work_dir>/diffusers``).
        num_samples (int): DDIM samples in each grid; 0 for none.
            Defaults to 8.
        sample_steps (int): DDIM steps. Defaults to 25.
        sample_size (int, optional): Side of the samples in pixels.
            Defaults to None (the last training batch's).
        seed (int): Seed of the samples' starting noise (the same at every
            checkpoint, so grids compare). Defaults to 0.
    """

    # last at before_save_checkpoint: after EMAHook (NORMAL) has swapped the
    # EMA weights into the checkpoint's state_dict
    priority = 'LOWEST'

    def __init__(self, out_dir: Optional[str] = None, num_samples: int = 8,
                 sample_steps: int = 25, sample_size: Optional[int] = None,
                 seed: int = 0) -> None:
        self.out_dir = out_dir
        self.num_samples = num_samples
        self.sample_steps = sample_steps
        self.sample_size = sample_size
        self.seed = seed
        self._last_size = None
        self._pending: list = []  # (iteration, staged folder), unverified

    def _out_dir(self, runner) -> str:
        return osp.abspath(self.out_dir or osp.join(runner.work_dir,
                                                    'diffusers'))

    def before_run(self, runner) -> None:
        """Restore the newest complete export a killed publish left aside
        (before the checkpoint hook's clean-up of temporary files)."""
        if not is_main_process():
            return
        from mmdiff.models.pretrainers.export import recover_exports
        for note in recover_exports(self._out_dir(runner)):
            print_log(note, logger='current', level=logging.WARNING)

    def before_train(self, runner) -> None:
        """Adopt the staged export of the checkpoint this run resumes from
        (trusted by this run's first finite loss); drop the others (their
        weights are not the ones training goes on from)."""
        if not is_main_process():
            return
        from mmdiff.models.pretrainers.export import staged_exports
        for folder, it in staged_exports(self._out_dir(runner)).items():
            if it is not None and it == runner.iter and not self._pending:
                self._pending = [(it, folder)]
                continue
            print_log(f'Removed {folder}: an export of iteration {it} that '
                      'no finite loss verified and that this run does not '
                      f'go on from (it starts at iteration {runner.iter}).',
                      logger='current')
            _remove_folder(folder)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Publish the export staged before this iteration if its loss is
        finite (the weights it holds produced it), as NaNGuardHook trusts
        that checkpoint; drop it if not."""
        if self.sample_size is None and data_batch is not None:
            inputs = data_batch.get('inputs') if isinstance(
                data_batch, dict) else None
            if inputs is not None and len(inputs):
                self._last_size = tuple(inputs[0].shape[-2:])
        # this is iteration runner.iter + 1: exports of iterations up to
        # runner.iter are judged by its loss
        ready = [(it, f) for it, f in self._pending if it <= runner.iter]
        if not ready:
            return
        self._pending = [p for p in self._pending if p not in ready]
        if outputs and non_finite_terms(outputs):
            for _, folder in ready:
                _remove_folder(folder)
            return
        self._publish(runner, ready)

    def after_train(self, runner) -> None:
        """The last checkpoint has no loss after it: publish its export if
        the weights are finite (NaNGuardHook trusts it by the same test)."""
        if self._pending and weights_finite(runner.model):
            self._publish(runner, self._pending)
        else:
            for _, folder in self._pending:
                _remove_folder(folder)
        self._pending = []

    def _publish(self, runner, ready: list) -> None:
        from mmdiff.models.pretrainers.export import (export_meta,
                                                      publish_staged)
        ready = sorted(ready)
        for _, folder in ready[:-1]:  # superseded
            _remove_folder(folder)
        it, folder = ready[-1]
        out_dir = self._out_dir(runner)
        ema = (export_meta(folder) or {}).get('ema')
        publish_staged(folder, out_dir)
        print_log(f'Exported the {"EMA " if ema else ""}U-Net + VAE '
                  f'of iteration {it} to {out_dir} (its weights verified: '
                  f'finite; backbone: pretrained={out_dir}, '
                  'scale_latents=True).', logger='current')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if not is_main_process():
            return
        from mmdiff.models.pretrainers.export import (build_plain_unet,
                                                      image_grid,
                                                      stage_diffusers)
        model = runner.model
        model = getattr(model, 'module', model)
        if not hasattr(model, 'sample') or not hasattr(model, 'scheduler'):
            raise TypeError(
                'DiffusersExportHook exports mmdiff.DiffusionPretrainer '
                f'models, not {type(model).__name__}. Fix: remove the hook '
                'from custom_hooks.')
        state = checkpoint.get('state_dict')
        ema = 'ema_state_dict' in checkpoint
        it = checkpoint.get('meta', {}).get('iter', runner.iter)
        out_dir = self._out_dir(runner)
        meta = dict(iter=it, ema=ema)
        captions = None
        if getattr(model, 'text_encoder', None) is not None and \
                self.num_samples > 0:
            captions = _first_captions(runner, self.num_samples)
            meta['sample_captions'] = captions
        bad = [k for k, v in (state or {}).items() if k.startswith('unet.')
               and v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            print_log(f'Not exported: the U-Net weights of iteration {it} '
                      f'hold NaN/inf ({bad[:3]}); {out_dir} keeps the last '
                      'trusted export.', logger='current',
                      level=logging.WARNING)
        else:
            self._pending.append(
                (it, stage_diffusers(model, out_dir, state, meta=meta)))
            print_log(f'Staged the export of iteration {it}; it replaces '
                      f'{out_dir} once a finite loss verifies its weights.',
                      logger='current')
        if self.num_samples <= 0:
            return
        size = (self.sample_size, self.sample_size) if self.sample_size \
            else self._last_size
        if size is None:
            return
        factor = 2**(len(model.vae.config.block_out_channels) - 1)
        latent = (max(1, size[0] // factor), max(1, size[1] // factor))
        unet = build_plain_unet(model, state)
        images = model.sample(self.num_samples, latent, self.sample_steps,
                              self.seed, unet=unet, captions=captions)
        path = osp.join(runner.work_dir, 'samples', f'iter_{it}.png')
        bgr = cv2.cvtColor(image_grid(images), cv2.COLOR_RGB2BGR)
        atomic_write(path, lambda tmp: _imwrite(tmp, bgr))
        print_log(f'DDIM samples ({self.sample_steps} steps) of iteration '
                  f'{it}: {path}', logger='current')
