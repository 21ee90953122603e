"""What ``tools/train.py`` and ``tools/test.py`` share, for mmseg and mmdet.

The config's ``default_scope`` decides which host library runs: mmengine's
Runner switches to that scope and imports its registries, so one entry point
serves both.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction

from .data_root import set_data_root


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Add the flags every OpenMMLab entry point has."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs '
        '(e.g. train_cfg.max_iters=100 model.backbone.use_attn=False)')
    parser.add_argument(
        '--data-root',
        help='folder holding the data set: rewrites every dataloader\'s '
        'data_root and evaluator ann_file (--cfg-options data_root=... does '
        'not reach them; see docs/dataset_prepare.md)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torch.distributed launchers pass --local-rank (torch >= 2.0).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def apply_common_args(args: argparse.Namespace) -> Config:
    """Load ``args.config`` and apply the shared flags to it."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise FileNotFoundError(
            f'Config file {args.config!r} does not exist. Pass a path such as '
            'configs/demo/vpd_tiny-fpn_demo-seg.py.')
    cfg = Config.fromfile(args.config)
    if 'default_scope' not in cfg:
        raise ValueError(
            f'{args.config} sets no default_scope. mmdiff configs run under '
            "their host library: set default_scope = 'mmseg' or 'mmdet' "
            '(inheriting a mmseg::/mmdet:: base does this).')
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'data_root', None):
        set_data_root(cfg, args.data_root)
    # work_dir priority: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
