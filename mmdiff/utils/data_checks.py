"""Data-loading failures turned into one error naming the file and the fix.

Bad files fail inside the host's transforms (a 1x1 image ends in an
``AssertionError`` of mmengine's ``PixelData`` from mmseg's
``LoadAnnotations``), and a data set left empty by its filters fails while it
is built (``np.concatenate`` of nothing in mmengine's ``_serialize_data``),
both before any hook can look at a batch. :func:`guard_dataloaders` (called
by ``tools/train.py`` and ``tools/test.py`` through ``check_before_run``)
wraps the Runner's ``build_dataloader`` so that

* every built data set's pipeline runs through :class:`CheckedPipeline`: a
  transform that raises is named with the file it was loading, and an image
  file smaller than ``min_size`` pixels on a side is refused as soon as it
  is loaded;
* a data set whose construction fails is diagnosed: when it holds no image
  after loading and filtering, the error says so and names the annotation
  file and the fix (diagnosis runs only on failure, at no cost otherwise).
"""
import copy
from typing import Any, Optional

import numpy as np


class DataInputError(ValueError):
    """A data file the pipeline cannot use, with the file and the fix."""


def _where(results: Any) -> str:
    if isinstance(results, dict):
        for key in ('img_path', 'seg_map_path', 'depth_map_path'):
            if results.get(key):
                return str(results[key])
    return 'a sample'


class CheckedPipeline:
    """Runs a ``Compose``'s transforms, naming the file of a failure.

    Args:
        pipeline: The data set's ``Compose`` (its ``transforms`` are run).
        min_size (int): Smallest height/width of a loaded image file.
            Defaults to 8 (SD's VAE factor: one latent pixel).
    """

    def __init__(self, pipeline, min_size: int = 8) -> None:
        self.pipeline = pipeline
        self.min_size = min_size

    @property
    def transforms(self) -> list:
        return self.pipeline.transforms

    def __repr__(self) -> str:
        return f'CheckedPipeline({self.pipeline!r})'

    def __call__(self, results: dict) -> Optional[dict]:
        had_img = isinstance(results, dict) and 'img' in results
        for t in self.pipeline.transforms:
            where = _where(results)
            try:
                results = t(results)
            except DataInputError:
                raise
            except Exception as e:
                msg = (str(e).strip().splitlines() or [''])[0][:200]
                raise DataInputError(
                    f'{type(t).__name__} failed on {where} '
                    f'({type(e).__name__}: {msg}). Fix: check that this '
                    'file is complete and of the size, channels and type '
                    'the pipeline expects, or drop it from the data set.'
                ) from e
            if results is None:
                return None
            if not had_img and 'img' in results:
                had_img = True
                self._check_loaded(results)
        return results

    def _check_loaded(self, results: dict) -> None:
        img = results['img']
        if not isinstance(img, np.ndarray) or img.ndim < 2:
            return
        height, width = img.shape[:2]
        if min(height, width) < self.min_size:
            raise DataInputError(
                f'Image {_where(results)} is {height}x{width} pixels, less '
                f'than {self.min_size} on a side (under one latent pixel of '
                "an SD VAE): a broken or placeholder file. Fix: replace or "
                'drop it from the data set.')


def _wrap_pipelines(dataset, depth: int = 0) -> None:
    if dataset is None or depth > 4:
        return
    pipeline = getattr(dataset, 'pipeline', None)
    if pipeline is not None and hasattr(pipeline, 'transforms') and \
            not isinstance(pipeline, CheckedPipeline):
        dataset.pipeline = CheckedPipeline(pipeline)
    _wrap_pipelines(getattr(dataset, 'dataset', None), depth + 1)
    for inner in getattr(dataset, 'datasets', None) or []:
        _wrap_pipelines(inner, depth + 1)


def _diagnose_empty(dataloader: Any, error: Exception) -> None:
    """Raise a clear error when the data set of ``dataloader`` is empty."""
    if not isinstance(dataloader, dict) or \
            not isinstance(dataloader.get('dataset'), dict):
        return
    from mmengine.registry import DATASETS
    cfg = copy.deepcopy(dataloader['dataset'])
    cfg['lazy_init'] = True
    try:
        dataset = DATASETS.build(cfg)
        dataset.data_list = dataset.load_data_list()
        listed = len(dataset.data_list)
        kept = len(dataset.filter_data())
    except Exception:  # not diagnosable this way: keep the first error
        return
    if kept:
        return
    ann = getattr(dataset, 'ann_file', '') or ''
    root = getattr(dataset, 'data_root', '') or ''
    raise DataInputError(
        f'The data set {cfg.get("type")} (data_root={root!r}, '
        f'ann_file={ann!r}) is empty: {listed} images listed, {kept} left '
        'after filtering. Fix: check data_root/data_prefix/ann_file, that '
        'the annotation file has annotations (mmdet drops images without '
        'any under filter_cfg=dict(filter_empty_gt=True)) and that '
        "metainfo's classes match the file's categories.") from error


def guard_dataloaders(runner) -> None:
    """Wrap ``runner.build_dataloader`` with the checks of this module."""
    build = getattr(runner, 'build_dataloader', None)
    if build is None or getattr(build, '_mmdiff_checked', False):
        return

    def build_dataloader(dataloader, *args, **kwargs):
        try:
            loader = build(dataloader, *args, **kwargs)
        except Exception as e:
            _diagnose_empty(dataloader, e)
            raise
        _wrap_pipelines(getattr(loader, 'dataset', None))
        return loader

    build_dataloader._mmdiff_checked = True
    runner.build_dataloader = build_dataloader
