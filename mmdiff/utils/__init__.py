"""Helpers below the models: they import nothing from mmdiff.models."""
from .checkpoint import register_checkpoint_safe_globals
from .cli import add_common_args, apply_common_args
from .dist import setup_cpu_distributed

__all__ = ['register_checkpoint_safe_globals', 'add_common_args',
           'apply_common_args', 'setup_cpu_distributed']

_MOVED_TO_APIS = ('check_before_run', 'precheck_checkpoint')


def __getattr__(name: str):
    # compatibility: the checks of a host run moved above the models
    if name in _MOVED_TO_APIS:
        import mmdiff.apis
        return getattr(mmdiff.apis, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
