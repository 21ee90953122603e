"""What the entry points call around a host Runner: one start-up sequence
(:func:`prepared_runner`), checks of the built model and of the checkpoint
it loads, and the host tools' ``--tta`` / ``--amp`` options.

Above :mod:`mmdiff.models` in the import order (tools -> apis -> converters
/ engine -> models -> utils): :mod:`mmdiff.utils` imports nothing from here
or from the models.
"""
from .checkpoint_checks import check_checkpoint, precheck_checkpoint
from .host_checks import (CLASS_HEAD_PATHS, READER_PATHS,
                          check_class_embeddings, check_in_channels,
                          check_model, check_normalization, check_strides,
                          host_part, level_strides)
from .host_options import apply_amp, apply_tta
from .run import prepared_runner
from .run_checks import check_before_run
from .schedule_checks import fit_schedule

__all__ = [
    'check_before_run', 'precheck_checkpoint', 'check_checkpoint',
    'check_model', 'check_in_channels', 'check_class_embeddings',
    'check_normalization', 'check_strides', 'level_strides', 'host_part',
    'READER_PATHS', 'CLASS_HEAD_PATHS', 'apply_amp', 'apply_tta',
    'fit_schedule', 'prepared_runner'
]
