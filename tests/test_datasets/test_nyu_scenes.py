"""NYUSceneDataset: the scene-id rule is an explicit choice (mmseg / VPD)."""
import os.path as osp

import mmcv
import numpy as np
import pytest
import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _vpd_classes():
    path = osp.join(ROOT, 'tests', 'data', 'recipes', 'vpd_nyu_depth.yml')
    with open(path) as f:
        return yaml.safe_load(f)['recipe']['class_list']


def _vpd_rule(img_path, class_list):
    """depth/dataset/nyudepthv2.py, transcribed: first listed name that
    '<folder>_<file>' contains (-1 here where VPD asserts)."""
    parts = img_path.split('/')
    filename = parts[-2] + '_' + parts[-1]
    for i, name in enumerate(class_list):
        if name in filename:
            return i
    return -1


# (path relative to images/test, mmseg's scene, VPD's scene); the VPD-style
# paths are from VPD's split lists (folder = scene sequence)
CASES = [
    ('study_room_0004/rgb_00045.jpg', None, 'study'),
    ('office_kitchen_0001/rgb_00100.jpg', None, 'kitchen'),
    ('nyu_office_0/rgb_00001.jpg', None, 'office'),
    ('bathroom_0001/rgb_00001.jpg', None, 'bathroom'),
    ('study_room_0004_00045.jpg', 'study_room', 'study'),
    ('office_kitchen_0001_00100.jpg', 'office_kitchen', 'kitchen'),
    ('living_room_0010_00007.jpg', 'living_room', 'living_room'),
]


@pytest.fixture(scope='module')
def nyu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('nyu')
    for rel, _, _ in CASES:
        for sub, ext in (('images', '.jpg'), ('annotations', '.png')):
            path = root / sub / 'test' / rel.replace('.jpg', ext)
            path.parent.mkdir(parents=True, exist_ok=True)
            mmcv.imwrite(np.zeros((4, 4), np.uint8), str(path))
    return root


def _ids(dataset, root):
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return {osp.relpath(d['img_path'], str(root / 'images' / 'test')):
            d['category_id'] for d in infos}


@pytest.mark.parametrize('rule', ['mmseg', 'vpd'])
def test_scene_rule(nyu_root, rule):
    from mmseg.datasets import NYUDataset

    from mmdiff.datasets.nyu_scenes import NYUSceneDataset
    classes = list(NYUDataset.METAINFO['classes'])
    dataset = NYUSceneDataset(
        scene_rule=rule, data_root=str(nyu_root), test_mode=True,
        data_prefix=dict(img_path='images/test',
                         depth_map_path='annotations/test'))
    mmseg = NYUDataset(data_root=str(nyu_root), test_mode=True,
                       data_prefix=dict(img_path='images/test',
                                        depth_map_path='annotations/test'))
    ids, mmseg_ids = _ids(dataset, nyu_root), _ids(mmseg, nyu_root)
    vpd_classes = _vpd_classes()
    for rel, mmseg_scene, vpd_scene in CASES:
        if rule == 'mmseg':  # mmseg's own NYUDataset is the reference
            assert ids[rel] == mmseg_ids[rel]
            want = classes.index(mmseg_scene) if mmseg_scene else -1
            assert ids[rel] == want, rel
        else:  # VPD's loop over its own class list is the reference
            path = str(nyu_root / 'images' / 'test' / rel)
            assert ids[rel] == _vpd_rule(path, vpd_classes), rel
            assert classes[ids[rel]] == vpd_scene, rel


def test_bad_rule_names_the_choices():
    from mmdiff.datasets.nyu_scenes import NYUSceneDataset
    with pytest.raises(ValueError, match=r"scene_rule='glp'.*'mmseg', 'vpd'"):
        NYUSceneDataset(scene_rule='glp', data_root='nowhere')


def test_zoo_configs_set_their_sources_rule():
    from mmengine.config import Config
    for name, rule in (('vpd_sd15_4xb8-25k_nyu-480x480.py', 'mmseg'),
                       ('vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py',
                        'vpd')):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', 'vpd', name))
        for split in ('train', 'val', 'test'):
            dataset = cfg[f'{split}_dataloader'].dataset
            assert dataset.type == 'NYUSceneDataset', (name, split)
            assert dataset.scene_rule == rule, (name, split)
