"""Fixtures for the data-set tests: fabricated miniatures of the reference
data sets (layouts.py), built once per session in a temporary folder."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))


def _load(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


layouts = _load('mmdiff_test_layouts', osp.join(HERE, 'layouts.py'))


def run(args, cwd: str, timeout: int = 600, check: bool = True):
    """Run a command the way a user does (PYTHONWARNINGS quiet)."""
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='2')
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, (
            f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='session')
def fabricated(tmp_path_factory):
    """``fabricated(name) -> data_root`` of a reference layout, made once.

    NYUv2 and KITTI are fabricated as their official downloads and reshaped
    with tools/dataset_converters/ (as docs/dataset_prepare.md says)."""
    base = tmp_path_factory.mktemp('data')
    made = {}

    def get(name: str) -> str:
        if name in made:
            return made[name]
        root = str(base / name)
        if name == 'ade20k':
            made[name] = layouts.ade20k(root)
        elif name == 'cityscapes':
            made[name] = layouts.cityscapes(root)
        elif name == 'voc_aug':
            made[name] = layouts.voc_aug(root)
        elif name == 'coco':
            made[name] = layouts.coco(root)
        elif name == 'coco_panoptic':
            made[name] = layouts.coco_panoptic(root)
        elif name == 'nyu':
            # 2 train frames, 1 test frame (slide_flip: 4 forwards a frame)
            mat, splits = layouts.nyu_official(
                str(base / 'nyu_official'), scenes=('kitchen', 'bedroom',
                                                    'living_room'),
                train=(1, 3), test=(2, ))
            run([osp.join(ROOT, 'tools/dataset_converters/nyu_depth_v2.py'),
                 mat, splits, '-o', root], cwd=str(base))
            made[name] = root
        elif name == 'kitti':
            # 1 test frame: slide_flip is 20 forwards on a 375x1242 frame
            raw, ann, train, test = layouts.kitti_official(
                str(base / 'kitti_official'), val_frames=(5, ))
            run([osp.join(ROOT, 'tools/dataset_converters/kitti_depth.py'),
                 '--raw', raw, '--depth', ann, '--splits', train, test,
                 '-o', root], cwd=str(base))
            made[name] = root
        else:
            raise KeyError(name)
        return made[name]

    return get
