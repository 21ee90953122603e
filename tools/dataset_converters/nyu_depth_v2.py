"""NYU Depth v2 (official labelled set) -> the layout mmseg's NYUDataset reads.

    python tools/dataset_converters/nyu_depth_v2.py \
        nyu_depth_v2_labeled.mat splits.mat -o data/nyu

Inputs are the official downloads (cs.nyu.edu/~silberman/datasets/
nyu_depth_v2.html): ``nyu_depth_v2_labeled.mat`` (1,449 frames, MATLAB v7.3,
read with h5py) and ``splits.mat`` (``trainNdxs`` 795 / ``testNdxs`` 654,
1-based, read with scipy). Written, as BTS's and VPD's
``extract_official_train_test_set_from_mat.py`` do (github.com/wl-zhao/VPD
@ 92095ab, depth/): the raw depth (``rawDepths``) in millimetres as uint16
PNG, the RGB frame with its 7-pixel border blacked out (the area the Kinect
depth does not cover), one file per frame named ``<sceneType>_<i:05d>``
(``i`` 0-based, as theirs) so the scene type leads the name (NYUDataset and
the scene prompts read it there)::

    data/nyu/images/{train,test}/<scene>_<i>.jpg
    data/nyu/annotations/{train,test}/<scene>_<i>.png

Nothing is left half-written: the output is built next to ``--out`` and
moved into place at the end.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

from mmdiff.utils.fileio import conversion_problem, publish_folder


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('mat', help='nyu_depth_v2_labeled.mat')
    parser.add_argument('splits', help='splits.mat (trainNdxs, testNdxs)')
    parser.add_argument('-o', '--out', default='data/nyu',
                        help='output folder (must not exist or be empty)')
    parser.add_argument('--depth', choices=['rawDepths', 'depths'],
                        default='rawDepths',
                        help='raw Kinect depth (BTS/VPD) or the in-painted '
                        'one')
    return parser.parse_args(argv)


def _write(path: str, array: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, array):
        _fail(f'could not write {path}.')


def _fail(message: str) -> None:
    sys.exit(f'nyu_depth_v2.py: {message}')


def _read_splits(path: str) -> dict:
    import scipy.io
    try:
        splits = scipy.io.loadmat(path)
    except Exception as e:  # noqa: BLE001 (any unreadable file)
        _fail(f'cannot read {path} as splits.mat ({e}).')
    if 'trainNdxs' not in splits or 'testNdxs' not in splits:
        _fail(f'{path} has no trainNdxs/testNdxs: pass the official '
              'splits.mat.')
    index = {}
    for key, split in (('trainNdxs', 'train'), ('testNdxs', 'test')):
        for i in np.asarray(splits[key]).ravel():
            index[int(i) - 1] = split  # 1-based in MATLAB
    return index


def convert(mat: str, splits: str, out: str,
            depth_key: str = 'rawDepths') -> dict:
    """Write the mmseg layout; returns the number of frames per split."""
    try:
        import h5py
    except ImportError:
        _fail('needs h5py: bash tools/setup_env.sh --datasets')
    problem = conversion_problem((mat, splits), out)
    if problem:
        _fail(problem)
    index = _read_splits(splits)
    try:
        f = h5py.File(mat, 'r')
    except OSError as e:
        _fail(f'cannot read {mat} as HDF5 ({e}); pass the official '
              'nyu_depth_v2_labeled.mat (MATLAB v7.3).')
    with f:
        for key in ('images', depth_key, 'sceneTypes'):
            if key not in f:
                _fail(f'{mat} has no {key!r}: pass the official labelled '
                      'file nyu_depth_v2_labeled.mat.')
        scenes = [''.join(chr(c[0]) for c in f[ref])
                  for ref in f['sceneTypes'][0]]
        images, depths = f['images'], f[depth_key]
        if len(images) != len(scenes) or len(depths) != len(scenes):
            _fail(f'{mat}: images/depths/sceneTypes differ in length.')
        counts = dict(train=0, test=0)

        def fill(tmp: str) -> None:
            for i, scene in enumerate(scenes):
                split = index.get(i)
                if split is None:
                    _fail(f'frame {i + 1} is in neither split of {splits}.')
                name = f'{scene}_{i:05d}'
                rgb = np.asarray(images[i]).T  # (H, W, 3), RGB
                framed = np.zeros_like(rgb)
                framed[7:474, 7:632] = rgb[7:474, 7:632]
                _write(osp.join(tmp, 'images', split, name + '.jpg'),
                       np.ascontiguousarray(framed[..., ::-1]))
                depth_mm = np.asarray(depths[i]).T * 1000.0
                _write(osp.join(tmp, 'annotations', split, name + '.png'),
                       depth_mm.astype(np.uint16))
                counts[split] += 1

        publish_folder(out, fill, action='converting NYUv2')
    return counts


def main(argv=None) -> None:
    args = parse_args(argv)
    counts = convert(args.mat, args.splits, args.out, args.depth)
    print(f'NYUv2: {counts["train"]} train / {counts["test"]} test frames '
          f'written to {args.out}')


if __name__ == '__main__':
    main()
