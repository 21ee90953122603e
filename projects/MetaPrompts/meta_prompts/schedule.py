"""The learning-rate curve of the depth source (GLPDepth's, per step).

``depth/train.py:206-220``: with ``global_step`` counting from 1 and
``half = steps_per_epoch * (epochs // 2)``,
``lr = (max - min) * (step / half)^0.9 + min`` while ``step < half``, then
``max(min, (min - max) * (step / half - 1)^0.9 + max)``; each group's lr is
that times its ``lr_scale`` (0.01 for the U-Net).
"""
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import _ParamScheduler
from mmengine.registry import PARAM_SCHEDULERS


class PolyRampParamScheduler(_ParamScheduler):
    """Poly ramp up to each group's initial value over ``half_iters`` steps,
    then poly ramp down, never below ``min_factor`` of it.

    Args:
        optimizer: Wrapped optimizer.
        param_name (str): The parameter scheduled.
        half_iters (int): Steps of the ramp up (the source: steps per epoch
            x ``epochs // 2``).
        min_factor (float): ``min_lr / max_lr``.
        power (float): Defaults to 0.9.
        **kwargs: ``begin``, ``end``, ``last_step``, ``by_epoch``,
            ``verbose`` of :class:`_ParamScheduler`.
    """

    def __init__(self, optimizer, param_name: str, half_iters: int,
                 min_factor: float, power: float = 0.9, **kwargs) -> None:
        self.half_iters = half_iters
        self.min_factor = min_factor
        self.power = power
        super().__init__(optimizer, param_name, **kwargs)

    def factor(self, step: int) -> float:
        """The source's lr / max_lr at its ``global_step`` = ``step``."""
        x, low = step / self.half_iters, self.min_factor
        if step < self.half_iters:
            return (1 - low) * x**self.power + low
        return max(low, (low - 1) * (x - 1)**self.power + 1)

    def _get_value(self) -> list:
        # the source counts its first step as 1; mmengine's first is 0
        factor = self.factor(self.last_step + 1)
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class PolyRampLR(LRSchedulerMixin, PolyRampParamScheduler):
    """:class:`PolyRampParamScheduler` on the learning rate."""
