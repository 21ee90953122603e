"""Library code of the analysis tools (``tools/analysis_tools/``): the
linear probe of a frozen backbone (:mod:`.linear_probe`) and the feature
visualiser (:mod:`.visualize`)."""
from .linear_probe import chance, fit_and_score, probe_features
from .visualize import build_model, class_names, load_image, visualize

__all__ = [
    'chance', 'fit_and_score', 'probe_features', 'build_model',
    'class_names', 'load_image', 'visualize'
]
