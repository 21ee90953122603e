"""KITTI depth (Eigen split) -> the layout KITTIDepthDataset reads.

    python tools/dataset_converters/kitti_depth.py \
        --raw /data/kitti_raw --depth /data/data_depth_annotated \
        --splits eigen_train_files_with_gt.txt eigen_test_files_with_gt.txt \
        -o data/kitti

Inputs are the official downloads (cvlibs.net/datasets/kitti): the raw data
(``<date>/<drive>_sync/image_02/data/*.png``) and the annotated depth maps
(``data_depth_annotated/{train,val}/<drive>_sync/proj_depth/groundtruth/
image_02/*.png``), plus the Eigen split files, either BTS's
(``eigen_{train,test}_files_with_gt.txt``: ``<image> <depth|None> <focal>``)
or VPD's/GLPDepth's ``eigen_benchmark/{train,test}_list.txt``
(``/raw_data/<image> /data_depth_annotated/<train|val>/<depth>``).

Written (no image is copied: the folders are symbolic links)::

    data/kitti/raw -> <raw>
    data/kitti/gt_depth/<drive>_sync -> <depth>/{train,val}/<drive>_sync
    data/kitti/kitti_eigen_{train,test}_files_with_gt.txt   (BTS format)

Every image and depth map a split names must exist (``--skip-missing``
drops the lines that do not instead). Nothing is left half-written: the
output is built next to ``--out`` and moved into place at the end.
"""
import argparse
import os
import os.path as osp
import re
import sys
from typing import List, Tuple

from mmdiff.utils.fileio import conversion_problem, publish_folder

KITTI_FOCAL = '721.5377'  # BTS's value for lines without one
NAMES = ('kitti_eigen_train_files_with_gt.txt',
         'kitti_eigen_test_files_with_gt.txt')
VPD_DEPTH = re.compile(r'^/?data_depth_annotated/(train|val)/')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--raw', required=True, help='KITTI raw data root')
    parser.add_argument('--depth', required=True,
                        help='data_depth_annotated (with train/ and val/)')
    parser.add_argument('--splits', nargs=2, required=True,
                        metavar=('TRAIN', 'TEST'), help='Eigen split files')
    parser.add_argument('-o', '--out', default='data/kitti',
                        help='output folder (must not exist or be empty)')
    parser.add_argument('--skip-missing', action='store_true',
                        help='drop split lines whose files are missing')
    return parser.parse_args(argv)


def _fail(message: str) -> None:
    sys.exit(f'kitti_depth.py: {message}')


def read_split(path: str) -> List[Tuple[str, str, str]]:
    """(image, depth or 'None', focal) per line, BTS or VPD format."""
    rows = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                _fail(f'{path}:{lineno}: expected "<image> <depth> '
                      f'[<focal>]", got {line.strip()!r}.')
            img = re.sub(r'^/?raw_data/', '', parts[0]).lstrip('/')
            depth = parts[1]
            if depth != 'None':
                depth = VPD_DEPTH.sub('', depth).lstrip('/')
            focal = parts[2] if len(parts) > 2 else KITTI_FOCAL
            rows.append((img, depth, focal))
    return rows


def _drive_folders(depth_root: str) -> dict:
    drives = {}
    for split in ('train', 'val'):
        folder = osp.join(depth_root, split)
        if osp.isdir(folder):
            for drive in sorted(os.listdir(folder)):
                drives[drive] = osp.abspath(osp.join(folder, drive))
    if not drives:
        _fail(f'{depth_root} has no train/ or val/ drive folders: pass the '
              'extracted data_depth_annotated folder.')
    return drives


def convert(raw: str, depth: str, splits: List[str], out: str,
            skip_missing: bool = False) -> List[int]:
    """Write the layout; returns the number of lines kept per split."""
    if not osp.isdir(raw):
        _fail(f'--raw {raw} is not a folder.')
    problem = conversion_problem(splits, out)
    if problem:
        _fail(problem)
    drives = _drive_folders(depth)
    kept, outputs = [], []
    for path in splits:
        lines, missing = [], []
        for img, gt, focal in read_split(path):
            drive = gt.split('/')[0]
            ok = osp.isfile(osp.join(raw, img)) and (
                gt == 'None' or (drive in drives and osp.isfile(
                    osp.join(drives[drive], osp.relpath(gt, drive)))))
            if ok:
                lines.append(f'{img} {gt} {focal}')
            else:
                missing.append(f'{img} {gt}')
        if missing and not skip_missing:
            _fail(f'{len(missing)} line(s) of {path} name files that are '
                  f'not under --raw/--depth, e.g. {missing[0]!r}. Check the '
                  'folders, or pass --skip-missing to drop them.')
        kept.append(len(lines))
        outputs.append(lines)

    def fill(tmp: str) -> None:
        os.symlink(osp.abspath(raw), osp.join(tmp, 'raw'))
        os.makedirs(osp.join(tmp, 'gt_depth'))
        for drive, folder in drives.items():
            os.symlink(folder, osp.join(tmp, 'gt_depth', drive))
        for name, lines in zip(NAMES, outputs):
            with open(osp.join(tmp, name), 'w') as f:
                f.write('\n'.join(lines) + '\n')

    publish_folder(out, fill, action='converting KITTI depth')
    return kept


def main(argv=None) -> None:
    args = parse_args(argv)
    kept = convert(args.raw, args.depth, args.splits, args.out,
                   args.skip_missing)
    print(f'KITTI Eigen: {kept[0]} train / {kept[1]} test lines, layout in '
          f'{args.out}')


if __name__ == '__main__':
    main()
