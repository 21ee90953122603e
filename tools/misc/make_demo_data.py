"""Make the offline demo data sets (see docs/demo_data.md).

Example:
    python tools/misc/make_demo_data.py                  # all three tasks
    python tools/misc/make_demo_data.py --tasks seg --size 64 --force
    python tools/misc/make_demo_data.py --own-data data  # data/my_seg, my_coco
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from mmdiff.datasets.demo_data import DEMO_TASKS, ensure_demo_data  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Render the offline demo data sets (seg: ADE20K layout, '
        'depth: NYU layout, coco: COCO json with polygons, panoptic: COCO '
        'panoptic json + PNGs).')
    parser.add_argument('--tasks', nargs='+', choices=DEMO_TASKS,
                        default=list(DEMO_TASKS), help='data sets to make')
    parser.add_argument('--root', default='data/demo',
                        help='parent folder; each task goes to ROOT/TASK')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs='+', default=[96],
                        help='image size: S or H W')
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-val', type=int, default=16)
    parser.add_argument('--force', action='store_true',
                        help='rewrite data sets that already exist')
    parser.add_argument('--chance', action='store_true',
                        help='also print the chance levels of seg, depth and '
                        'panoptic '
                        '(image-blind baselines scored by the host metrics)')
    parser.add_argument('--own-data', metavar='DIR',
                        help='instead: the seg and coco scenes laid out as '
                        'your own data (DIR/my_seg: image + mask folders, '
                        'DIR/my_coco: COCO json), as configs/custom/ read it')
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2):
        parser.error('--size takes one value (S) or two (H W)')
    return args


def folder_stats(folder):
    """Return (number of files, total bytes) under ``folder``."""
    count = total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            count += 1
            total += osp.getsize(osp.join(dirpath, name))
    return count, total


def main(argv=None):
    args = parse_args(argv)
    size = args.size[0] if len(args.size) == 1 else tuple(args.size)
    if args.own_data:
        from mmdiff.datasets.own_data_example import write_own_data_example
        folders = write_own_data_example(
            args.own_data, demo_root=args.root, num_train=args.num_train,
            num_val=args.num_val, size=size, seed=args.seed,
            force=args.force)
        for task, folder in folders.items():
            count, total = folder_stats(folder)
            print(f'{task:5s} {folder}: {count} files, '
                  f'{total / 2**20:.2f} MiB')
        return
    grand = 0
    for task in args.tasks:
        existed = osp.exists(osp.join(args.root, task))
        try:
            folder = ensure_demo_data(
                task, root=args.root, num_train=args.num_train,
                num_val=args.num_val, size=size, seed=args.seed,
                force=args.force)
        except ValueError as err:
            sys.exit(f'error: {err}')
        count, total = folder_stats(folder)
        grand += total
        state = 'kept' if existed and not args.force else 'wrote'
        print(f'{state} {task:5s} {folder}: {count} files, '
              f'{total / 2**20:.2f} MiB')
    print(f'total {grand / 2**20:.2f} MiB under {args.root}')
    if args.chance:
        print_chance(args.root, args.tasks)


def print_chance(root, tasks):
    from mmengine.logging import MMLogger

    from mmdiff.datasets.demo_chance import (depth_chance, panoptic_chance,
                                             seg_chance)

    # The host metrics print their tables to the current logger: quieten it
    # while they run.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')
    try:
        if 'seg' in tasks:
            res = seg_chance(osp.join(root, 'seg'))
            print('chance seg   (all background): ' + ', '.join(
                f'{k} {float(v):.2f}' for k, v in res.items()))
        if 'depth' in tasks:
            for name, res in depth_chance(osp.join(root, 'depth')).items():
                print(f'chance depth ({name}): ' + ', '.join(
                    f'{k} {res[k]:.3f}' for k in ('rmse', 'abs_rel', 'd1')))
        if 'panoptic' in tasks:
            res = panoptic_chance(osp.join(root, 'panoptic'))
            print('chance panoptic (one background segment): ' + ', '.join(
                f'{k} {res[k]:.2f}' for k in ('PQ', 'PQ_th', 'PQ_st')))
    finally:
        logger.setLevel(level)

if __name__ == '__main__':
    main()
