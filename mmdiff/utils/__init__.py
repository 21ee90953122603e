"""Helpers below the models: they import nothing from mmdiff.models."""
from .checkpoint import register_checkpoint_safe_globals
from .cli import add_common_args, apply_common_args
from .dist import setup_cpu_distributed

__all__ = ['register_checkpoint_safe_globals', 'add_common_args',
           'apply_common_args', 'setup_cpu_distributed']
