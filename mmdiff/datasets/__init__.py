"""Offline demo data sets (see ``docs/demo_data.md``)."""
from .demo_data import (DEMO_DEPTH_SCALE, DEMO_DET_CLASSES, DEMO_DET_PALETTE,
                        DEMO_SEG_CLASSES, DEMO_SEG_PALETTE, DEMO_SPLITS,
                        DEMO_TASKS, ensure_demo_data, make_demo_coco,
                        make_demo_depth, make_demo_seg)
from .demo_datasets import DemoCocoDataset, DemoDepthDataset, DemoSegDataset
from .demo_chance import depth_chance, seg_chance
from .demo_scene import render_scene

__all__ = [
    'DemoCocoDataset', 'DemoDepthDataset', 'DemoSegDataset',
    'DEMO_DEPTH_SCALE', 'DEMO_DET_CLASSES', 'DEMO_DET_PALETTE',
    'DEMO_SEG_CLASSES', 'DEMO_SEG_PALETTE', 'DEMO_SPLITS', 'DEMO_TASKS',
    'ensure_demo_data', 'make_demo_coco', 'make_demo_depth', 'make_demo_seg',
    'render_scene', 'seg_chance', 'depth_chance'
]
