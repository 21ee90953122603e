"""Library code of ``tools/analysis_tools/benchmark_backbone.py``: mmdiff's
VPD against mmseg 1.2's VPD on the same weights (shared weights, builders,
measurement, one process per case in :mod:`.cases`, report); and of
``benchmark_pretrainer.py``: the pretrainer under mmengine's Runner vs a
plain loop (:mod:`.pretrainer`, run as ``python -m`` for each half)."""
from .builders import OPTIMIZERS, build_mmdiff, build_mmseg, unet_fn
from .measure import PeakMemory, matmul_rate, run_case
from .report import (DIT_PAIR, EXTRA_IMPLS, IMPLS, P2_PAIR, machine,
                     markdown, summarise)
from .weights import prepare_weights

__all__ = [
    'OPTIMIZERS', 'build_mmdiff', 'build_mmseg', 'unet_fn', 'PeakMemory',
    'matmul_rate', 'run_case', 'DIT_PAIR', 'IMPLS', 'EXTRA_IMPLS',
    'P2_PAIR', 'machine', 'markdown', 'summarise',
    'prepare_weights'
]
