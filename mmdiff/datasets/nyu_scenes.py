"""NYU Depth V2 with an explicit rule for the scene prompt of each image.

A VPD depth model is conditioned on one of the 27 NYU scene names per image
(``category_id``, the row of the class embeddings). Two released models read
that id from the file path with different rules, and a checkpoint must see
the rule it was trained with:

* ``'mmseg'`` (mmsegmentation 1.x ``NYUDataset``, used by mmseg's VPD
  release): the file name up to the character before its first digit, e.g.
  ``study_room_0004_00123.jpg`` -> ``study_room``; a name that is not one of
  the classes gives -1 (the mean prompt).
* ``'vpd'`` (VPD's own ``depth/dataset/nyudepthv2.py``, used by VPD's NYU
  release): ``<parent folder>_<file name>`` is searched for every class name
  in the class-list order and the FIRST name it contains wins, e.g.
  ``study_room_0004`` -> ``study`` (listed before ``study_room``),
  ``office_kitchen_0001`` -> ``kitchen``. VPD asserts a match; here no match
  gives -1 (the mean prompt), as with mmseg's rule.

The class list (mmseg's ``NYUDataset.METAINFO``) is VPD's
``nyu_class_list.json`` in the same order, so ids index the same embedding
rows under both rules.
"""
import os.path as osp

from mmseg.datasets import NYUDataset
from mmseg.registry import DATASETS

SCENE_RULES = ('mmseg', 'vpd')


@DATASETS.register_module()
class NYUSceneDataset(NYUDataset):
    """mmseg's ``NYUDataset`` with the scene-id rule as an argument.

    Args:
        scene_rule (str): ``'mmseg'`` (name before the first digit) or
            ``'vpd'`` (first class name, in class-list order, contained in
            ``<parent folder>_<file name>``). Set it to the rule of the
            checkpoint's source. Defaults to ``'mmseg'``.
        **kwargs: Passed to mmseg's ``NYUDataset``.
    """

    def __init__(self, scene_rule: str = 'mmseg', **kwargs) -> None:
        if scene_rule not in SCENE_RULES:
            raise ValueError(
                f'NYUSceneDataset: scene_rule={scene_rule!r} is not one of '
                f'{SCENE_RULES}; use "mmseg" for mmsegmentation\'s VPD '
                'checkpoint and "vpd" for VPD\'s own NYU checkpoint')
        self.scene_rule = scene_rule
        super().__init__(**kwargs)

    def _get_category_id_from_filename(self, image_fname: str) -> int:
        """The scene id of an image path under ``scene_rule``."""
        if self.scene_rule == 'mmseg':
            return super()._get_category_id_from_filename(image_fname)
        return vpd_scene_id(image_fname, self._metainfo['classes'])


def vpd_scene_id(image_path: str, classes) -> int:
    """VPD's rule: the index of the first of ``classes`` (in order) that
    ``<parent folder>_<file name>`` of ``image_path`` contains, else -1."""
    parent = osp.basename(osp.dirname(image_path))
    text = f'{parent}_{osp.basename(image_path)}'
    for index, name in enumerate(classes):
        if name in text:
            return index
    return -1
