from .atomic_checkpoint_hook import AtomicCheckpointHook
from .demo_vae_hook import DemoVAEHook
from .diffusers_export_hook import DiffusersExportHook
from .input_guard_hook import InputGuardHook
from .load_coverage_hook import LoadCoverageHook
from .nan_guard_hook import NaNGuardHook
from .prediction_guard_hook import PredictionGuardHook
from .resume_optim_hook import ResumeOptimSettingsHook

__all__ = ['AtomicCheckpointHook', 'DemoVAEHook', 'DiffusersExportHook',
           'InputGuardHook',
           'LoadCoverageHook', 'NaNGuardHook', 'PredictionGuardHook',
           'ResumeOptimSettingsHook']
