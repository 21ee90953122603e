from .checkpoint import register_checkpoint_safe_globals
from .cli import add_common_args, apply_common_args
from .dist import setup_cpu_distributed
from .validation import check_before_run, precheck_checkpoint

__all__ = ['register_checkpoint_safe_globals', 'add_common_args',
           'apply_common_args', 'setup_cpu_distributed', 'check_before_run',
           'precheck_checkpoint']
