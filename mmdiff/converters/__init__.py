"""Checkpoint layout conversion: VPD, mmseg VPD and SD files to mmdiff.

Pure dict-to-dict conversion (:func:`convert_state_dict`) plus small file
helpers; ``tools/model_converters/vpd_to_mmdiff.py`` is the command line.
"""
from .convert import CLASS_EMBEDDINGS, ConversionResult, convert_state_dict
from .io import atomic_write, load_source, save_checkpoint, sha256_file
from .layouts import LAYOUTS, Layout, detect_layout, unwrap_state_dict
from .ldm import SD_V1_INFERENCE, ConversionError

__all__ = [
    'CLASS_EMBEDDINGS', 'ConversionError', 'ConversionResult', 'LAYOUTS',
    'Layout',
    'SD_V1_INFERENCE', 'atomic_write', 'convert_state_dict', 'detect_layout',
    'load_source', 'save_checkpoint', 'sha256_file', 'unwrap_state_dict'
]
