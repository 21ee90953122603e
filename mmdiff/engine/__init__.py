"""Training-loop pieces for mmengine runners: hooks registered in
``mmdiff.registry.HOOKS`` (``type='mmdiff.<Name>'`` in configs)."""
from .hooks import AtomicCheckpointHook, NaNGuardHook

__all__ = ['AtomicCheckpointHook', 'NaNGuardHook']
