"""Offline demo data sets (see ``docs/demo_data.md``).

The host data set classes that read them (and pull in mmseg and mmdet) live
in :mod:`mmdiff.datasets.demo_datasets`; configs import that module.
"""
from .demo_data import (DEMO_DEPTH_SCALE, DEMO_DET_CLASSES, DEMO_DET_PALETTE,
                        DEMO_SEG_CLASSES, DEMO_SEG_PALETTE, DEMO_SPLITS,
                        DEMO_TASKS, ensure_demo_data, make_demo_coco,
                        make_demo_depth, make_demo_seg)
from .demo_chance import depth_chance, panoptic_chance, seg_chance
from .demo_scene import render_scene
from .image_folder import IMAGE_EXTENSIONS, ImageFolderDataset

__all__ = [
    'DEMO_DEPTH_SCALE', 'DEMO_DET_CLASSES', 'DEMO_DET_PALETTE',
    'DEMO_SEG_CLASSES', 'DEMO_SEG_PALETTE', 'DEMO_SPLITS', 'DEMO_TASKS',
    'ensure_demo_data', 'make_demo_coco', 'make_demo_depth', 'make_demo_seg',
    'IMAGE_EXTENSIONS', 'ImageFolderDataset', 'render_scene', 'seg_chance', 'depth_chance', 'panoptic_chance'
]
