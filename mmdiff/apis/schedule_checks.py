"""A schedule that ends before the run does: stretched, refused or logged.

mmengine config inheritance freezes every number a base derived from its own
``max_iters``: a child of the demos' 600-iteration schedule that sets
``train_cfg = dict(max_iters=2000)`` keeps ``PolyLR(end=600, eta_min=0)``,
and mmengine's schedulers then hold the learning rate at 0.0 from iteration
600 to 2000, without a word. :func:`fit_schedule` (called by
``tools/train.py`` before the runner is built) compares every scheduler's
``end`` with the loop's length, in the loop's unit (iterations or epochs):

* a schedule that decays to its end (poly, cosine, a decaying linear one)
  and ends before ``max_iters`` is stretched to end there: the shape the
  base wrote, over the run the child asked for; warm-ups stay as they are;
  a validation or checkpoint interval that equalled the old end (the base's
  "at the end") follows it;
* a schedule whose shape is fixed by absolute steps (``milestones``,
  ``step_size``, ``T_max``, ``gamma`` per step, ...) cannot be stretched
  without guessing: it is refused when it would train on at 0, naming both
  numbers and the fix, and kept with a log line when it holds a non-zero
  value (a hold phase can be meant: the GenerativeDepth recipe decays
  exponentially for 25k of its 30k iterations);
* a validation or checkpoint interval beyond the end of the run is set to
  the end (one at the end, as mmengine would have done implicitly).

Every change is returned as a log line naming both numbers.
"""
from typing import List, Tuple

#: Schedulers whose values decay until ``end`` and whose shape is given by
#: ``begin``/``end`` alone: stretched when they end early.
_STRETCH = ('PolyLR', 'PolyMomentum', 'PolyParamScheduler',
            'CosineAnnealingLR', 'CosineAnnealingMomentum',
            'CosineAnnealingParamScheduler', 'LinearLR', 'LinearMomentum',
            'LinearParamScheduler')
#: Keys that fix a shape in absolute steps: refused when ending early.
_FIXED_KEYS = ('milestones', 'step_size', 'T_max', 'total_steps', 'periods')
#: Decaying schedulers with such a shape (refused even without those keys).
_FIXED = ('MultiStepLR', 'MultiStepMomentum', 'MultiStepParamScheduler',
          'StepLR', 'StepMomentum', 'StepParamScheduler', 'ExponentialLR',
          'ExponentialMomentum', 'ExponentialParamScheduler', 'OneCycleLR',
          'OneCycleParamScheduler', 'CosineRestartLR',
          'CosineRestartMomentum', 'CosineRestartParamScheduler')
_INF = 1000000000  # mmengine's INF: no end given


def _schedulers(cfg) -> List[Tuple[str, dict]]:
    scheds = cfg.get('param_scheduler', None)
    if scheds is None:
        return []
    if isinstance(scheds, dict) and 'type' not in scheds:  # per optimizer
        return [(f'param_scheduler.{name}.{i}', s)
                for name, group in scheds.items()
                for i, s in enumerate(group if isinstance(group, (list, tuple))
                                      else [group])]
    if isinstance(scheds, dict):
        return [('param_scheduler', scheds)]
    return [(f'param_scheduler.{i}', s) for i, s in enumerate(scheds)]


def _kind(sched: dict) -> str:
    kind = sched.get('type', '')
    return kind.rsplit('.', 1)[-1] if isinstance(kind, str) else \
        getattr(kind, '__name__', str(kind))


def _decays(sched: dict) -> bool:
    """Does the scheduler lower its value until ``end``? (A warm-up
    LinearLR rises; after it the base value holds, which is fine.)"""
    if _kind(sched) in ('LinearLR', 'LinearMomentum',
                        'LinearParamScheduler'):
        return sched.get('end_factor', 1.0) < sched.get(
            'start_factor', 1.0 / 3)
    return True


def _holds_zero(sched: dict) -> bool:
    """Does the scheduler end at a value of 0 (and train on at lr 0)?"""
    kind = _kind(sched)
    if kind.startswith(('Poly', 'CosineAnnealing')):
        return not sched.get('eta_min', 0.0) and \
            not sched.get('eta_min_ratio', None)
    return False


def _final(sched: dict) -> str:
    if _kind(sched).startswith('Linear'):
        return f'end_factor={sched.get("end_factor", 1.0)} x its base'
    return f'eta_min={sched.get("eta_min", 0.0)}'


def fit_schedule(cfg) -> List[str]:
    """Stretch a schedule that ends before the run, or refuse it.

    Args:
        cfg (mmengine.Config): The training config; changed in place.

    Returns:
        list[str]: One log line per change or per early end kept (empty
        when the schedule fits the run).

    Raises:
        ValueError: A schedule set in absolute steps ends before the run
            and would train on at 0.
    """
    train_cfg = cfg.get('train_cfg', None) or {}
    if 'max_iters' in train_cfg:
        total, by_epoch, unit = train_cfg['max_iters'], False, 'iteration'
        length = 'train_cfg.max_iters'
    elif 'max_epochs' in train_cfg:
        total, by_epoch, unit = train_cfg['max_epochs'], True, 'epoch'
        length = 'train_cfg.max_epochs'
    else:
        return []
    notes = []
    ours = [(name, s) for name, s in _schedulers(cfg)
            if isinstance(s, dict) and s.get('by_epoch', True) == by_epoch]
    ends = [s.get('end', _INF) for _, s in ours]
    last = max([e for e in ends if e < _INF], default=None)
    old_end = None
    if last is not None and last < total:
        for name, sched in ours:
            if sched.get('end', _INF) != last or not _decays(sched):
                continue
            kind = _kind(sched)
            fixed = [k for k in _FIXED_KEYS if k in sched]
            if kind in _STRETCH and not fixed:
                pass  # stretched below
            elif _holds_zero(sched):
                raise ValueError(
                    f'{name} ({kind}) ends at {unit} {last} but {length} is '
                    f'{total}: the last {total - last} {unit}s would train '
                    f'at {_final(sched)}. Its shape is set in absolute steps'
                    f' ({", ".join(fixed) or kind}), so mmdiff does not '
                    f'guess how to stretch it. Fix: set {name}.end={total} '
                    f'(and its {", ".join(fixed) or "steps"} for a run of '
                    f'{total}) in your config, or {length}={last}.')
            else:  # a hold phase at a non-zero value can be meant
                notes.append(
                    f'Schedule: {name} ({kind}) ends at {unit} {last} and '
                    f'{length} is {total}: the last {total - last} {unit}s '
                    'run at its final value (kept as written: its shape is '
                    f'set in absolute steps, {", ".join(fixed) or kind}). '
                    f'If that is not meant, set {name}.end={total} (and its'
                    ' steps) or shorten the run.')
                continue
            sched['end'] = total
            notes.append(
                f'Schedule: {name} ({kind}) ended at {unit} {last} but '
                f'{length} is {total} (a config inheriting a shorter '
                f'schedule?): its value would stay at {_final(sched)} for '
                f'{total - last} {unit}s. Stretched to end={total} '
                '(same shape, warm-up unchanged). To train as written, '
                f'set {length}={last}.')
            old_end = last
    hooks = cfg.get('default_hooks', None) or {}
    ckpt = hooks.get('checkpoint', None) or {}
    intervals = []
    if 'val_interval' in train_cfg:
        intervals.append(('train_cfg.val_interval', train_cfg, 'val_interval'))
    if 'interval' in ckpt and ckpt.get('by_epoch', True) == by_epoch:
        intervals.append(('default_hooks.checkpoint.interval', ckpt,
                          'interval'))
    for name, holder, key in intervals:
        value = holder[key]
        if not isinstance(value, int) or value <= 0:
            continue
        if value > total:
            why = 'beyond the end of the run'
        elif old_end is not None and value == old_end:
            why = 'the old end of the schedule'
        else:
            continue
        holder[key] = total
        notes.append(f'Schedule: {name} was {value} ({why}) and {length} '
                     f'is {total}: set to {total}.')
    return notes
