"""Training-loop pieces for mmengine runners: hooks registered in
``mmdiff.registry.HOOKS`` (``type='mmdiff.<Name>'`` in configs)."""
from .fsdp import diffusion_block_wrap_policy
from .hooks import (AtomicCheckpointHook, DemoVAEHook, DiffusersExportHook,
                    InputGuardHook,
                    LoadCoverageHook, NaNGuardHook, PredictionGuardHook,
                    ResumeOptimSettingsHook)

__all__ = ['AtomicCheckpointHook', 'DemoVAEHook', 'DiffusersExportHook',
           'InputGuardHook',
           'LoadCoverageHook', 'NaNGuardHook', 'PredictionGuardHook',
           'ResumeOptimSettingsHook', 'diffusion_block_wrap_policy']
