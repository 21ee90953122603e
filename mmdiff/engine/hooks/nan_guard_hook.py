"""Stop training at the first non-finite input or loss, naming the iteration.

mmdet's ``CheckInvalidLossHook`` checks only every ``interval`` (50)
iterations, only ``outputs['loss']``, through an ``assert`` (gone under
``python -O``) whose message is ``None``. :class:`NaNGuardHook` checks every
iteration, both the batch and every logged loss term, and raises one error
that says where and what to do.
"""
import math
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook

from mmdiff.registry import HOOKS


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
    so the bad iteration is neither logged as a number nor checkpointed: the
    last checkpoint on disk predates it and ``--resume`` restarts from there.

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
        """Refuse non-finite loss terms."""
        if not outputs:
            return
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
        if bad:
            last = runner.message_hub.get_info('last_ckpt')
            resume = (f'the last good checkpoint is {last}'
                      if last else 'no checkpoint was written yet')
            raise FloatingPointError(
                f'Non-finite loss at iteration {runner.iter + 1} (batch '
                f'{batch_idx}): {bad}. Training stopped; this iteration was '
                f'neither logged nor checkpointed ({resume}). Fix: lower the '
                'learning rate or enable optim_wrapper.clip_grad, check the '
                'data of this batch, or with --amp use a dynamic loss scale; '
                'then resume with tools/train.py CONFIG --resume.')
