"""One summary line instead of thousands of per-parameter log lines.

mmengine's ``DefaultOptimWrapperConstructor`` logs one line per parameter
setting (``paramwise_options -- backbone.unet...:lr=...``, about 2,000 for an
SD1.5 VPD) and one warning per frozen tensor (``... is skipped since its
requires_grad=False``, one per VAE tensor). A ``logging.Filter`` on the
runner's logger counts those records instead of printing them, and a hook
logs what they said in one line each when training starts. mmengine itself
is not changed.
"""
import logging
import re
from collections import Counter

from mmengine.hooks import Hook
from mmengine.logging import MMLogger

PARAMWISE = re.compile(r'^paramwise_options -- (?P<name>\S+):(?P<key>\w+)='
                       r'(?P<value>.*)$')
FROZEN = re.compile(r'^(?P<name>\S*) is skipped since its '
                    r'requires_grad=False$')


def _group(name: str) -> str:
    """``backbone.vae.encoder.conv_in`` -> ``backbone.vae``."""
    return '.'.join(name.split('.')[:2])


class OptimizerLogSummary(logging.Filter):
    """Counts (and drops) the per-parameter optimizer-constructor records."""

    def __init__(self) -> None:
        super().__init__()
        self.settings = Counter()  # 'lr=1e-06' -> parameters
        self.params = set()
        self.frozen = Counter()  # 'backbone.vae' -> tensors

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = PARAMWISE.match(message)
        if match:
            self.settings[f"{match['key']}={match['value']}"] += 1
            self.params.add(match['name'])
            return False
        match = FROZEN.match(message)
        if match:
            self.frozen[_group(match['name'])] += 1
            return False
        return True

    def lines(self) -> list:
        """The summary lines (none when nothing was counted)."""
        lines = []
        if self.params:
            settings = ', '.join(f'{k} x{n}'
                                 for k, n in self.settings.most_common())
            lines.append(
                f'paramwise_options: {len(self.params)} parameters with '
                f'their own settings ({settings}); per-parameter lines '
                'summarised')
        if self.frozen:
            groups = ', '.join(f'{k} x{n}'
                               for k, n in self.frozen.most_common())
            lines.append(
                f'requires_grad=False: {sum(self.frozen.values())} frozen '
                f'tensors left out of the optimizer ({groups})')
        return lines


class _SummaryHook(Hook):
    """Logs the summary once the optimizer is built, then stops filtering."""
    priority = 'VERY_HIGH'

    def __init__(self, summary: OptimizerLogSummary,
                 logger: logging.Logger) -> None:
        self.summary = summary
        self.logger = logger

    def before_train(self, runner) -> None:
        self.logger.removeFilter(self.summary)
        for line in self.summary.lines():
            self.logger.info(line)


def quiet_optimizer_logs(runner) -> OptimizerLogSummary:
    """Summarise the optimizer constructor's per-parameter lines of a run.

    Call after building the runner, before ``runner.train()``.

    Args:
        runner: An mmengine ``Runner`` or ``FlexibleRunner``.

    Returns:
        OptimizerLogSummary: The filter (its counts, for tests).
    """
    logger = getattr(runner, 'logger', None) or MMLogger.get_current_instance()
    summary = OptimizerLogSummary()
    logger.addFilter(summary)
    runner.register_hook(_SummaryHook(summary, logger))
    return summary
