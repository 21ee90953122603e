"""Stop a val/test run at the first prediction holding NaN/inf.

A model whose weights overflow predicts NaN; mmseg then labels every pixel
class 0 (``argmax`` of NaN logits) and still prints a metric table, with
exit code 0. ``tools/train.py`` and ``tools/test.py`` register
:class:`PredictionGuardHook` (as they do the input guard), which checks every
floating-point field the model wrote into each data sample (``seg_logits``,
``pred_*``: depth maps, boxes and scores, ...; not the ground truth) after
each val/test iteration and raises one error naming the image and the field.
"""
from typing import Iterator, Optional, Sequence, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement

from mmdiff.registry import HOOKS


def _non_finite_fields(element: BaseDataElement,
                       prefix: str = '') -> Iterator[str]:
    """Names of the floating-point tensors below ``element`` with NaN/inf,
    ground truth (``gt_*``, ``ignored_*``: the data set's, not the
    model's) left out."""
    for key, value in element.items():
        if not prefix and key.startswith(('gt_', 'ignored_')):
            continue
        if isinstance(value, BaseDataElement):
            yield from _non_finite_fields(value, f'{prefix}{key}.')
        elif isinstance(value, torch.Tensor) and \
                value.is_floating_point() and \
                not bool(torch.isfinite(value).all()):
            yield prefix + key


@HOOKS.register_module()
class PredictionGuardHook(Hook):
    """Raise ``FloatingPointError`` on a non-finite val/test prediction.

    Runs after each iteration, before any metric is computed (metrics are
    computed once the loop ends), so no table from NaN is printed.
    """

    priority = 'ABOVE_NORMAL'

    def after_val_iter(self, runner, batch_idx: int,
                       data_batch: Optional[dict] = None,
                       outputs: Optional[Sequence] = None) -> None:
        self._check(runner, batch_idx, outputs, 'val')

    def after_test_iter(self, runner, batch_idx: int,
                        data_batch: Optional[dict] = None,
                        outputs: Optional[Sequence] = None) -> None:
        self._check(runner, batch_idx, outputs, 'test')

    def _check(self, runner, batch_idx: int, outputs, mode: str) -> None:
        bad = self._first_bad(outputs)
        if bad is None:
            return
        name, fields = bad
        checkpoint = getattr(runner, '_load_from', None) or 'its weights'
        raise FloatingPointError(
            f'The model predicted non-finite values (NaN/inf) in '
            f'{", ".join(fields)} for {name} ({mode} iteration {batch_idx}); '
            'metrics from them would be meaningless, so the run stops. The '
            f'weights ({checkpoint}) overflow on this input. Fix: use an '
            'earlier checkpoint of the run (a NaN guard keeps '
            'last_finite.pth) or train again with a lower learning rate; '
            'with amp_dtype=float16, try bfloat16 or float32.')

    @staticmethod
    def _first_bad(outputs) -> Optional[Tuple[str, list]]:
        if not isinstance(outputs, Sequence):
            return None
        for i, sample in enumerate(outputs):
            if not isinstance(sample, BaseDataElement):
                continue
            fields = list(_non_finite_fields(sample))
            if fields:
                return sample.metainfo.get('img_path', f'image #{i}'), fields
        return None


def register_prediction_guard(runner) -> None:
    """Register a :class:`PredictionGuardHook` unless the runner has one."""
    hooks = getattr(runner, 'hooks', None)
    if hooks is None or any(isinstance(h, PredictionGuardHook)
                            for h in hooks):
        return
    runner.register_hook(PredictionGuardHook())
