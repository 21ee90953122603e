from .atomic_checkpoint_hook import AtomicCheckpointHook
from .demo_vae_hook import DemoVAEHook
from .load_coverage_hook import LoadCoverageHook
from .nan_guard_hook import NaNGuardHook

__all__ = ['AtomicCheckpointHook', 'DemoVAEHook', 'LoadCoverageHook',
           'NaNGuardHook']
