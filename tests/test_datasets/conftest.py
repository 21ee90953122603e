"""Fixtures for the data-set tests: fabricated miniatures of the reference
data sets (layouts.py), built once per session in a temporary folder."""
import pytest


@pytest.fixture(scope='session')
def layouts(load_tool):
    """tests/test_datasets/layouts.py: the layout fabricators."""
    return load_tool('tests/test_datasets/layouts.py')


@pytest.fixture(scope='session')
def fabricated(tmp_path_factory, layouts, run_tool):
    """``fabricated(name) -> data_root`` of a reference layout, made once.

    NYUv2 and KITTI are fabricated as their official downloads and reshaped
    with tools/dataset_converters/ (as docs/dataset_prepare.md says)."""
    base = tmp_path_factory.mktemp('data')
    made = {}

    def get(name: str) -> str:
        if name in made:
            return made[name]
        root = str(base / name)
        if name in ('ade20k', 'cityscapes', 'voc_aug', 'coco',
                    'coco_panoptic'):
            made[name] = getattr(layouts, name)(root)
        elif name == 'nyu':
            # 2 train frames, 1 test frame (slide_flip: 4 forwards a frame)
            mat, splits = layouts.nyu_official(
                str(base / 'nyu_official'), scenes=('kitchen', 'bedroom',
                                                    'living_room'),
                train=(1, 3), test=(2, ))
            run_tool('tools/dataset_converters/nyu_depth_v2.py', mat, splits,
                     '-o', root, cwd=str(base))
            made[name] = root
        elif name == 'kitti':
            # 1 test frame: slide_flip is 20 forwards on a 375x1242 frame
            raw, ann, train, test = layouts.kitti_official(
                str(base / 'kitti_official'), val_frames=(5, ))
            run_tool('tools/dataset_converters/kitti_depth.py', '--raw', raw,
                     '--depth', ann, '--splits', train, test, '-o', root,
                     cwd=str(base))
            made[name] = root
        else:
            raise KeyError(name)
        return made[name]

    return get
