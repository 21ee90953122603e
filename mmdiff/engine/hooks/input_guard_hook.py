"""Refuse bad data at the model's door, naming the file and the fix.

``tools/train.py`` and ``tools/test.py`` register :class:`InputGuardHook`
unless the config's ``custom_hooks`` already holds one (then its settings
are used: that is where a deliberate choice is declared). Before each
train/val/test iteration it checks the batch as the data pipeline delivered
it, before the data preprocessor, and stops at the first problem:

* images that are not 8-bit (``uint8``) unless declared in
  ``image_dtypes`` (a 16-bit png read with ``color_type='unchanged'`` would
  be normalised by mean/std 127.5 to about [-1, 513]); float images are
  8-bit content when their values lie in [0, 255] and exceed 1 (mmdet's
  ``LoadImageFromFile(to_float32=True)``, e.g. in Mask2Former's LSJ
  pipeline), while float images in [0, 1] (already scaled) are refused;
  float images holding NaN/inf;
* images without 3 channels (grayscale, RGBA) or smaller than the VAE's
  downsampling factor (less than one latent pixel);
* images over ``max_image_pixels`` (activation memory grows with the pixel
  count; a 4000x4000 image took 9.85 GB with the tiny demo model on CPU),
  except in sliding-window testing, where the model sees crops;
* segmentation labels outside ``0..num_classes-1`` other than the head's
  ``ignore_index``;
* depth maps without a single valid (finite, > 0) pixel.

Before a loop starts it refuses an empty data set (e.g. a COCO file whose
images have no annotations, all filtered out by ``filter_empty_gt``).
"""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook

from mmdiff.registry import HOOKS

HOOK_NAME = 'InputGuardHook'


def _model(runner):
    model = getattr(runner, 'model', None)
    return getattr(model, 'module', model)


def _name(sample, index: int) -> str:
    meta = getattr(sample, 'metainfo', {}) if sample is not None else {}
    return meta.get('img_path') or f'batch image #{index}'


def _declare(**kwargs) -> str:
    args = ', '.join(f'{k}={v!r}' for k, v in kwargs.items())
    return (f"custom_hooks=[dict(type='mmdiff.{HOOK_NAME}', {args})] in the "
            'config')


def _eight_bit_float(img: torch.Tensor) -> bool:
    """Whether a float image holds 8-bit values (in [0, 255], max > 1)."""
    if not img.is_floating_point() or not torch.isfinite(img).all():
        return False
    return float(img.min()) >= 0 and 1 < float(img.max()) <= 255


@HOOKS.register_module()
class InputGuardHook(Hook):
    """One clear error per kind of bad input batch.

    Args:
        image_dtypes (Sequence[str]): Image dtypes accepted as they reach
            the data preprocessor. Defaults to ``('uint8', )``.
        max_image_pixels (int): Largest ``H * W`` accepted (not checked in
            ``test_cfg.mode='slide'``). Defaults to 2048 * 2048.
        check_labels (bool): Check segmentation labels against
            ``num_classes``. Defaults to True.
        check_depth (bool): Refuse depth maps without a valid pixel.
            Defaults to True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, image_dtypes: Sequence[str] = ('uint8', ),
                 max_image_pixels: int = 2048 * 2048,
                 check_labels: bool = True,
                 check_depth: bool = True) -> None:
        self.image_dtypes = tuple(str(d).replace('torch.', '')
                                  for d in image_dtypes)
        self.max_image_pixels = int(max_image_pixels)
        self.check_labels = check_labels
        self.check_depth = check_depth

    # -- data sets -------------------------------------------------------
    def before_train(self, runner) -> None:
        self._check_dataset(runner, 'train')

    def before_val(self, runner) -> None:
        self._check_dataset(runner, 'val')

    def before_test(self, runner) -> None:
        self._check_dataset(runner, 'test')

    def _check_dataset(self, runner, mode: str) -> None:
        loop = getattr(runner, f'{mode}_loop', None)
        loader = getattr(loop, 'dataloader', None)
        dataset = getattr(loader, 'dataset', None)
        if dataset is None or not hasattr(dataset, '__len__') or len(dataset):
            return
        cfg = getattr(dataset, 'data_root', None) or ''
        ann = getattr(dataset, 'ann_file', None) or ''
        raise ValueError(
            f'The {mode} data set is empty (data_root={cfg!r}, '
            f'ann_file={ann!r}): no image is left after loading and '
            'filtering. Fix: check the paths and data_prefix, that the '
            'annotation file lists images with annotations (mmdet drops '
            "images without any when filter_cfg=dict(filter_empty_gt=True))"
            ', and that the classes in metainfo match the file\'s.')

    # -- batches ---------------------------------------------------------
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        self._check_batch(runner, data_batch, 'train')

    def before_val_iter(self, runner, batch_idx: int,
                        data_batch: Optional[dict] = None) -> None:
        self._check_batch(runner, data_batch, 'val')

    def before_test_iter(self, runner, batch_idx: int,
                         data_batch: Optional[dict] = None) -> None:
        self._check_batch(runner, data_batch, 'test')

    def _check_batch(self, runner, data_batch, mode: str) -> None:
        if not isinstance(data_batch, dict):
            return
        inputs = data_batch.get('inputs')
        samples = data_batch.get('data_samples') or []
        if isinstance(inputs, torch.Tensor):
            inputs = list(inputs) if inputs.ndim == 4 else [inputs]
        if not isinstance(inputs, (list, tuple)):
            return
        model = _model(runner)
        for i, img in enumerate(inputs):
            sample = samples[i] if i < len(samples) else None
            if isinstance(img, torch.Tensor):
                self._check_image(model, img, _name(sample, i), mode)
            if sample is not None:
                self._check_targets(model, sample, _name(sample, i))

    def _check_image(self, model, img: torch.Tensor, name: str,
                     mode: str) -> None:
        dtype = str(img.dtype).replace('torch.', '')
        if dtype not in self.image_dtypes and not _eight_bit_float(img):
            lo, hi = float(img.double().min()), float(img.double().max())
            raise ValueError(
                f'Image {name} reaches the model as {dtype} (values {lo:g}'
                f'..{hi:g}), not {"/".join(self.image_dtypes)}: mean/std '
                'made for 8-bit images (e.g. 127.5) would scale it to about '
                f'[{lo / 127.5 - 1:.3g}, {hi / 127.5 - 1:.3g}]. Fix: load '
                "8-bit images (LoadImageFromFile with color_type='color'), "
                'convert it when preparing the data, or, if intended, set '
                'mean/std for its range and declare the dtype with '
                + _declare(image_dtypes=self.image_dtypes + (dtype, )) + '.')
        if img.is_floating_point() and not torch.isfinite(img).all():
            raise FloatingPointError(
                f'Image {name} holds NaN/inf values. Fix: repair or drop '
                'the file, or the transform that produced them.')
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(
                f'Image {name} has shape {tuple(img.shape)} (C, H, W): the '
                'VAE takes 3-channel RGB images, not grayscale/RGBA. Fix: '
                "LoadImageFromFile(color_type='color') (the default) "
                'converts grayscale and RGBA files to 3 channels.')
        height, width = img.shape[-2:]
        factor = getattr(getattr(model, 'backbone', None), 'vae_factor', 8)
        if min(height, width) < factor:
            raise ValueError(
                f'Image {name} is {height}x{width} pixels, smaller than the '
                f"VAE's downsampling factor {factor}: the U-Net would see "
                'less than one latent pixel of it. Fix: drop the file or '
                "resize it in the pipeline (dict(type='Resize', scale=...)).")
        test_cfg = getattr(model, 'test_cfg', None) or {}
        slide = mode != 'train' and test_cfg.get('mode') == 'slide'
        if height * width > self.max_image_pixels and not slide:
            raise ValueError(
                f'Image {name} is {height}x{width} = '
                f'{height * width / 1e6:.1f} MP, over max_image_pixels='
                f'{self.max_image_pixels} '
                f'({self.max_image_pixels / 1e6:.1f} MP): VAE and U-Net '
                'activations grow with the pixel count (a 4000x4000 image '
                'took 9.85 GB with the tiny demo model on CPU). Fix: resize '
                'or crop in the pipeline (Resize, RandomCrop), test with '
                "test_cfg=dict(mode='slide', crop_size=..., stride=...), or "
                'raise the budget with '
                + _declare(max_image_pixels=height * width) + '.')

    def _check_targets(self, model, sample, name: str) -> None:
        seg = getattr(sample, 'gt_sem_seg', None)
        head = getattr(model, 'decode_head', None)
        num = getattr(head, 'num_classes', None)
        if self.check_labels and seg is not None and isinstance(num, int):
            ignore = getattr(head, 'ignore_index', 255)
            values = torch.unique(seg.data)
            outside = (values < 0) | (values >= num)
            bad = values[outside & (values != ignore)]
            if bad.numel():
                path = sample.metainfo.get('seg_map_path', name)
                raise ValueError(
                    f'Segmentation labels {bad.tolist()[:10]} in {path} are '
                    f'outside the {num} classes 0..{num - 1} (ignore index '
                    f'{ignore}). Fix: num_classes={int(bad.max()) + 1} if '
                    'they are classes; reduce_zero_label=True if 0 means '
                    'unlabelled and classes start at 1; or map them to '
                    f'{ignore} (ignored) when preparing the data.')
        depth = getattr(sample, 'gt_depth_map', None)
        if self.check_depth and depth is not None:
            data = depth.data
            if not ((data > 0) & torch.isfinite(data)).any():
                path = sample.metainfo.get('depth_map_path') or \
                    sample.metainfo.get('seg_map_path', name)
                raise ValueError(
                    f'Depth map {path} has no valid pixel (all values <= 0 '
                    'or NaN/inf): the loss would be 0 with zero gradients '
                    'and the metrics undefined. Fix: check the file and '
                    'depth_rescale_factor (e.g. 1e-3 for millimetre pngs), '
                    'or drop the image.')


def register_input_guard(runner) -> None:
    """Register an :class:`InputGuardHook` unless the runner has one."""
    hooks = getattr(runner, 'hooks', None)
    if hooks is None or any(isinstance(h, InputGuardHook) for h in hooks):
        return
    runner.register_hook(InputGuardHook())
