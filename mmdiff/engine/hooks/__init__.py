from .atomic_checkpoint_hook import AtomicCheckpointHook
from .nan_guard_hook import NaNGuardHook

__all__ = ['AtomicCheckpointHook', 'NaNGuardHook']
