"""A folder of unlabelled images, as it comes, for diffusion pretraining.

Every image file under ``data_root`` (recursively, common formats, any
size; the pipeline resizes and crops) is one sample, optionally with a caption
(``metadata.jsonl`` of Hugging Face's ``imagefolder`` layout and/or
``<image>.txt`` sidecars, :mod:`.image_folder_captions`). Files that cannot be
decoded are reported once, with their count and first names, and skipped;
a folder with no readable image is an error. Grayscale, RGBA and 16-bit
files are read as 8-bit 3-channel images by ``LoadImageFromFile``
(``color_type='color'``, OpenCV's ``IMREAD_COLOR``).

Registered in mmengine's root ``DATASETS``, so configs of any default scope
(mmseg, mmdet, ...) name it ``ImageFolderDataset`` after
``custom_imports=dict(imports=['mmdiff.datasets'])`` (the host registries
find it through their parent), and their pipelines' transforms resolve in
the config's own scope.
"""
import os
import os.path as osp
import threading
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmengine.registry import DATASETS

from .image_folder_captions import (CAPTION_SOURCES, METADATA_FILE,
                                   read_captions, walk_once)

#: File name endings read by default (case-insensitive).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp', '.ppm', '.pgm', '.pbm', '.jp2')


#: Default pixel cap of a file (width x height, read from its header before
#: any decoding): Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 89.5 MP, e.g.
#: 9459x9459), past which Pillow calls a file a decompression bomb.
MAX_PIXELS = 89478485
_PIL_LIMIT = threading.Lock()


def header_size(path: str) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from an image file's header, without decoding
    its pixels (Pillow reads headers lazily), or None when Pillow cannot
    read the header (the decoder then decides). Pillow's own
    decompression-bomb check is off for this read: the caller compares the
    size with its cap."""
    with _PIL_LIMIT:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as im:
                return im.size
        except Exception:  # not a format Pillow knows, or a broken header
            return None
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _decodes(path: str) -> bool:
    """Whether OpenCV decodes ``path`` to a non-empty image."""
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return False
    if buf.size == 0:
        return False
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:  # e.g. over OpenCV's own pixel limit
        return False
    return img is not None and img.size > 0


@DATASETS.register_module()
class ImageFolderDataset(BaseDataset):
    """Unlabelled images found under a folder.

    Args:
        data_root (str): The folder (searched recursively).
        pipeline (list): Transforms; e.g. ``LoadImageFromFile``, a resize
            and a crop to a fixed size, ``PackSegInputs``.
        extensions (Sequence[str]): File endings read (case-insensitive).
            Defaults to :data:`IMAGE_EXTENSIONS`.
        recursive (bool): Also search subfolders. Defaults to True.
        classes (str, optional): ``'subfolders'``: the first-level subfolder
            names are classes, ``class_id`` (their sorted index) goes into
            each sample (for class-conditional pretraining; add
            ``'class_id'`` to the packer's ``meta_keys``). Defaults to None.
        captions (str, optional): Read a caption per image into each
            sample's ``caption`` (add ``'caption'`` to the packer's
            ``meta_keys``): ``'metadata'`` (``metadata.jsonl`` files, HF
            ``imagefolder`` / diffusers' layout), ``'txt'`` (``<stem>.txt``
            beside the image, kohya's), ``'auto'`` (both; they must agree
            where both caption an image). None reads none. Defaults to
            None.
        caption_column (str): The ``metadata.jsonl`` caption column
            (diffusers' ``--caption_column``). Defaults to 'text'.
        missing_captions (str): An image without a caption: ``'error'``
            (the count and first names, before training starts) or
            ``'empty'`` (the empty prompt, as caption dropout gives).
            Defaults to 'error'.
        check (str): ``'decode'``: decode every file once when the list is
            made and skip those that fail (reported with a count);
            ``'none'``: trust the files. Defaults to 'decode'.
        max_pixels (int, optional): With ``check='decode'``, files whose
            header says width x height is larger are refused with an error
            before anything is decoded (a 400 KB PNG can hold 20000x20000
            pixels, 1.2 GB decoded). None: no cap. Defaults to
            :data:`MAX_PIXELS` (Pillow's decompression-bomb limit).
        **kwargs: ``BaseDataset`` arguments (``indices``,
            ``serialize_data``, ``max_refetch``, ...).
    """

    def __init__(self,
                 data_root: str,
                 pipeline: Sequence = (),
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 recursive: bool = True,
                 classes: Optional[str] = None,
                 check: str = 'decode',
                 captions: Optional[str] = None,
                 caption_column: str = 'text',
                 missing_captions: str = 'error',
                 max_pixels: Optional[int] = MAX_PIXELS,
                 **kwargs) -> None:
        if classes not in (None, 'subfolders'):
            raise ValueError(f"classes must be None or 'subfolders', got "
                             f'{classes!r}.')
        if check not in ('decode', 'none'):
            raise ValueError(f"check must be 'decode' or 'none', got "
                             f'{check!r}.')
        if captions not in (None, ) + CAPTION_SOURCES:
            raise ValueError(f'captions must be None or one of '
                             f'{list(CAPTION_SOURCES)}, got {captions!r}.')
        if missing_captions not in ('error', 'empty'):
            raise ValueError(f"missing_captions must be 'error' or 'empty', "
                             f'got {missing_captions!r}.')
        self.captions = captions
        self.caption_column = caption_column
        self.missing_captions = missing_captions
        self.extensions = tuple(e.lower() for e in extensions)
        self.recursive = recursive
        self.class_mode = classes
        self.check = check
        self.max_pixels = max_pixels
        self.skipped: List[str] = []
        super().__init__(data_root=data_root, pipeline=list(pipeline),
                         **kwargs)

    def _find(self) -> List[str]:
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(
                f'ImageFolderDataset: data_root {root!r} is not a folder. '
                'Fix: point data_root at the folder holding your images.')
        # Real paths are visited once: a link back up the tree (``self ->
        # .``) or a second link to a scanned folder or file adds nothing.
        found, repeated, seen = [], [], set()
        for dirpath, names in walk_once(root, self.recursive, repeated):
            for n in names:
                if n.startswith('.') or not n.lower().endswith(
                        self.extensions):
                    continue
                real = osp.realpath(osp.join(dirpath, n))
                if real in seen:
                    repeated.append(osp.join(dirpath, n))
                    continue
                seen.add(real)
                found.append(osp.join(dirpath, n))
        if repeated:
            names = [osp.relpath(p, root) for p in repeated]
            print_log(
                f'ImageFolderDataset: {len(repeated)} links under {root} lead '
                'to folders or images already scanned (symlink loops or '
                f'duplicates); each image is read once: {names[:5]}'
                f'{" ..." if len(names) > 5 else ""}', logger='current',
                level=30)
        return found

    def _check_pixels(self, paths: Sequence[str]) -> None:
        """Refuse files over ``max_pixels`` from their headers alone."""
        if self.max_pixels is None:
            return
        big = []
        for p in paths:
            size = header_size(p)
            if size and size[0] * size[1] > self.max_pixels:
                big.append(f'{p} ({size[0]}x{size[1]} = '
                           f'{size[0] * size[1]} pixels)')
        if big:
            raise ValueError(
                f'ImageFolderDataset: {len(big)} image(s) under '
                f'{self.data_root!r} have more pixels than max_pixels='
                f'{self.max_pixels} (read from their headers; not decoded): '
                f'{big[:5]}{" ..." if len(big) > 5 else ""}. Fix: downscale '
                'them (e.g. `mogrify -resize "8192x8192>" FILE`), remove '
                'them, or raise max_pixels in the data set config (None: no '
                'cap) if the machine has the memory to decode them.')

    def load_data_list(self) -> List[dict]:
        """One ``dict(img_path=..., [class_id=...], [caption=...])`` per
        readable image."""
        paths = self._find()
        found = list(paths)
        if self.check == 'decode':
            self._check_pixels(paths)
            good = [p for p in paths if _decodes(p)]
            self.skipped = sorted(set(paths) - set(good))
            paths = good
        if self.skipped:
            names = [osp.relpath(p, self.data_root) for p in self.skipped]
            print_log(
                f'ImageFolderDataset: skipped {len(self.skipped)} of '
                f'{len(paths) + len(self.skipped)} files under '
                f'{self.data_root} that could not be decoded (corrupt or '
                f'not images): {names[:5]}'
                f'{" ..." if len(names) > 5 else ""}', logger='current',
                level=30)
        if not paths:
            raise ValueError(
                f'ImageFolderDataset: no readable image under '
                f'{self.data_root!r} (looked for {list(self.extensions)}'
                f'{", recursively" if self.recursive else ""}; '
                f'{len(self.skipped)} undecodable). Fix: check data_root '
                'and extensions.')
        classes = []
        if self.class_mode == 'subfolders':
            classes = sorted({osp.relpath(p, self.data_root).split(os.sep)[0]
                              for p in paths
                              if os.sep in osp.relpath(p, self.data_root)})
            if not classes:
                raise ValueError(
                    "classes='subfolders' needs images in subfolders of "
                    f'{self.data_root!r} (one per class).')
            self._metainfo['classes'] = tuple(classes)
        captions = None
        if self.captions is not None:
            captions = read_captions(self.data_root, found, self.captions,
                                     self.caption_column)
            bare = [osp.relpath(p, self.data_root) for p in paths
                    if osp.normpath(p) not in captions]
            if bare and self.missing_captions == 'error':
                raise ValueError(
                    f'ImageFolderDataset: {len(bare)} of {len(paths)} images '
                    f'under {self.data_root!r} have no caption '
                    f'(captions={self.captions!r}): {bare[:5]}'
                    f'{" ..." if len(bare) > 5 else ""}. Fix: caption them '
                    f'({METADATA_FILE} rows with file_name and '
                    f'{self.caption_column!r}, or <name>.txt files), or set '
                    "missing_captions='empty' to train them on the empty "
                    'prompt.')
        out = []
        for p in paths:
            info = dict(img_path=p)
            if captions is not None:
                info['caption'] = captions.get(osp.normpath(p), '')
            if classes:
                top = osp.relpath(p, self.data_root).split(os.sep)[0]
                if top not in classes:
                    continue  # an image at the top level has no class
                info['class_id'] = classes.index(top)
            out.append(info)
        return out
