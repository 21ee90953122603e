from .checkpoint import register_checkpoint_safe_globals
from .cli import add_common_args, apply_common_args

__all__ = ['register_checkpoint_safe_globals', 'add_common_args',
           'apply_common_args']
