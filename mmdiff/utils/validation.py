"""Compatibility: :func:`check_image_size` moved to
:mod:`mmdiff.utils.image_size`; the checks of a built host model and of the
checkpoint it loads (``check_before_run``, ``check_checkpoint``, ...) moved
above the models, to :mod:`mmdiff.apis`."""
from .image_size import check_image_size

__all__ = ['check_image_size']
