"""The host data sets, reading the demo data and making it on first use.

Each class is the host's own data set class (mmseg ``BaseSegDataset`` /
``NYUDataset``, mmdet ``CocoDataset`` / ``CocoPanopticDataset``), unchanged but for one step: before
loading, :func:`ensure_demo_data` writes the demo data under ``data_root`` if
it is not there yet. They are registered in the host's registry, so configs
with ``default_scope='mmseg'``/``'mmdet'`` name them without a prefix after
``custom_imports=dict(imports=['mmdiff.datasets.demo_datasets'])`` (this
module: ``mmdiff.datasets`` alone does not import it, to keep mmseg and
mmdet out of ``import mmdiff.datasets``).
"""
import os.path as osp
from typing import Optional, Union

from mmdet.datasets import CocoDataset, CocoPanopticDataset
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmseg.datasets import BaseSegDataset, NYUDataset
from mmseg.registry import DATASETS as MMSEG_DATASETS

from .demo_data import (DEMO_DET_CLASSES, DEMO_DET_PALETTE, DEMO_SEG_CLASSES,
                        DEMO_SEG_PALETTE, ensure_demo_data)
from .demo_panoptic import (DEMO_PANOPTIC_CLASSES, DEMO_PANOPTIC_PALETTE,
                            DEMO_PANOPTIC_STUFF, DEMO_PANOPTIC_THINGS)


def _ensure(task: str, data_root: str, num_train: int, num_val: int,
            size: Union[int, tuple], seed: int) -> None:
    data_root = osp.normpath(data_root)
    if osp.basename(data_root) != task:
        raise ValueError(
            f'data_root of the demo {task} data set must end with '
            f'"/{task}" (e.g. data/demo/{task}), got {data_root!r}')
    ensure_demo_data(task, root=osp.dirname(data_root) or '.',
                     num_train=num_train, num_val=num_val, size=size,
                     seed=seed)


@MMSEG_DATASETS.register_module()
class DemoSegDataset(BaseSegDataset):
    """ADE20K-layout demo segmentation set (4 classes, background included).

    Args:
        data_root (str): Folder ending in ``seg``. Defaults to
            'data/demo/seg'.
        num_train, num_val, size, seed: Parameters of the generated data
            (see :func:`ensure_demo_data`).
        **kwargs: Passed to ``BaseSegDataset``.
    """
    METAINFO = dict(classes=DEMO_SEG_CLASSES, palette=DEMO_SEG_PALETTE)

    def __init__(self, data_root: str = 'data/demo/seg', num_train: int = 64,
                 num_val: int = 16, size: Union[int, tuple] = 96,
                 seed: int = 0, **kwargs) -> None:
        _ensure('seg', data_root, num_train, num_val, size, seed)
        kwargs.setdefault('img_suffix', '.jpg')
        kwargs.setdefault('seg_map_suffix', '.png')
        kwargs.setdefault('reduce_zero_label', False)
        super().__init__(data_root=data_root, **kwargs)


@MMSEG_DATASETS.register_module()
class DemoDepthDataset(NYUDataset):
    """NYU-layout demo depth set (depth png in mm, scene in the file name).

    Args:
        data_root (str): Folder ending in ``depth``. Defaults to
            'data/demo/depth'.
        num_train, num_val, size, seed: Parameters of the generated data.
        **kwargs: Passed to mmseg's ``NYUDataset``.
    """

    def __init__(self, data_root: str = 'data/demo/depth',
                 num_train: int = 64, num_val: int = 16,
                 size: Union[int, tuple] = 96, seed: int = 0,
                 **kwargs) -> None:
        _ensure('depth', data_root, num_train, num_val, size, seed)
        super().__init__(data_root=data_root, **kwargs)


@MMDET_DATASETS.register_module()
class DemoCocoDataset(CocoDataset):
    """COCO-format demo detection / instance segmentation set (3 classes).

    Args:
        data_root (str): Folder ending in ``coco``. Defaults to
            'data/demo/coco'.
        num_train, num_val, size, seed: Parameters of the generated data.
        **kwargs: Passed to mmdet's ``CocoDataset``.
    """
    METAINFO = dict(classes=DEMO_DET_CLASSES, palette=DEMO_DET_PALETTE)
    TASK = 'coco'

    def __init__(self, data_root: Optional[str] = None,
                 num_train: int = 64, num_val: int = 16,
                 size: Union[int, tuple] = 96, seed: int = 0,
                 **kwargs) -> None:
        data_root = data_root or f'data/demo/{self.TASK}'
        _ensure(self.TASK, data_root, num_train, num_val, size, seed)
        super().__init__(data_root=data_root, **kwargs)


@MMDET_DATASETS.register_module()
class DemoCocoSmallDataset(DemoCocoDataset):
    """The small-object variant of :class:`DemoCocoDataset`: the demo
    scenes with objects at 0.4x their size, up to 12 a scene (all
    COCO-small at 128 px; ``demo_data.SCENE_STYLES``).

    Args:
        data_root (str): Folder ending in ``coco_small``. Defaults to
            'data/demo/coco_small'.
        num_train, num_val, size, seed: Parameters of the generated data.
        **kwargs: Passed to mmdet's ``CocoDataset``.
    """
    TASK = 'coco_small'


@MMDET_DATASETS.register_module()
class DemoCocoPanopticDataset(CocoPanopticDataset):
    """COCO-panoptic-format demo set: 3 thing classes and 1 stuff class.

    Args:
        data_root (str): Folder ending in ``panoptic``. Defaults to
            'data/demo/panoptic'.
        num_train, num_val, size, seed: Parameters of the generated data.
        **kwargs: Passed to mmdet's ``CocoPanopticDataset``.
    """
    METAINFO = dict(classes=DEMO_PANOPTIC_CLASSES,
                    thing_classes=DEMO_PANOPTIC_THINGS,
                    stuff_classes=DEMO_PANOPTIC_STUFF,
                    palette=DEMO_PANOPTIC_PALETTE)

    def __init__(self, data_root: str = 'data/demo/panoptic',
                 num_train: int = 64, num_val: int = 16,
                 size: Union[int, tuple] = 96, seed: int = 0,
                 **kwargs) -> None:
        _ensure('panoptic', data_root, num_train, num_val, size, seed)
        super().__init__(data_root=data_root, **kwargs)
