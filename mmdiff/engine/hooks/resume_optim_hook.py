"""Apply the config's optimizer settings after ``--resume``, and say so.

mmengine's ``Runner.resume`` loads the optimizer's ``param_groups`` from the
checkpoint, so a learning rate (or weight decay, betas, ...) changed in the
config or with ``--cfg-options`` is silently replaced by the checkpoint's.
:class:`ResumeOptimSettingsHook` (registered by ``tools/train.py`` when
resuming) records the settings the config built before the checkpoint is
loaded (``before_run``) and, once it is (``before_train``), puts back every
one that differs, with a log line per change. A changed base learning rate
rescales the current one and the schedulers' base values by the same
factor, so the schedule goes on from where it was, at the new scale.
"""
import math
from typing import Dict, List

from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmdiff.registry import HOOKS

_SKIP = ('params', 'lr', 'initial_lr')


def _groups(runner) -> List[dict]:
    optim = getattr(getattr(runner, 'optim_wrapper', None), 'optimizer',
                    None)
    return list(getattr(optim, 'param_groups', None) or [])


def _differs(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return not math.isclose(float(a), float(b), rel_tol=1e-9)
        except (TypeError, ValueError):
            return a != b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) != len(b) or any(_differs(x, y) for x, y in zip(a, b))
    return a != b


def _schedulers(runner) -> list:
    scheds = getattr(runner, 'param_schedulers', None) or []
    if isinstance(scheds, dict):
        return [s for v in scheds.values() for s in v]
    return list(scheds)


@HOOKS.register_module()
class ResumeOptimSettingsHook(Hook):
    """Keep the config's optimizer settings over a resumed checkpoint's."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._config: List[Dict] = []

    def before_run(self, runner) -> None:
        self._config = [
            dict({k: v for k, v in g.items() if k not in _SKIP},
                 base_lr=g.get('initial_lr', g.get('lr')))
            for g in _groups(runner)]

    def before_train(self, runner) -> None:
        groups = _groups(runner)
        if not self._config or len(groups) != len(self._config):
            return
        changes = []
        for i, (group, wanted) in enumerate(zip(groups, self._config)):
            old = group.get('initial_lr', group.get('lr'))
            new = wanted['base_lr']
            if None not in (old, new) and old != 0 and _differs(old, new):
                ratio = new / old
                group['lr'] = group['lr'] * ratio
                group['initial_lr'] = new
                for sched in _schedulers(runner):
                    if getattr(sched, 'param_name', None) != 'lr':
                        continue
                    sched.base_values[i] = sched.base_values[i] * ratio
                    last = getattr(sched, '_last_value', None)
                    if isinstance(last, list) and i < len(last):
                        last[i] = last[i] * ratio
                changes.append(f'group {i} lr: checkpoint {old:g} -> config '
                               f'{new:g} (current lr now {group["lr"]:g})')
            for key, value in wanted.items():
                if key == 'base_lr' or key not in group:
                    continue
                if _differs(group[key], value):
                    changes.append(f'group {i} {key}: checkpoint '
                                   f'{group[key]} -> config {value}')
                    group[key] = value
        if changes:
            print_log(
                'Resumed with optimizer settings that differ from the '
                "checkpoint's; the config's (with --cfg-options) are applied:"
                '\n  ' + '\n  '.join(changes), logger='current',
                level=30)
