"""Evaluate a checkpoint with an mmseg or mmdet config (its ``default_scope``
decides).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out PATH]
                         [--show-dir DIR] [--tta] [--cfg-options k=v ...]
"""
import argparse
import os.path as osp
import sys

# Run from a checkout, the checkout's mmdiff wins over an installed copy.
_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

from mmdiff.apis import apply_tta, prepared_runner
from mmdiff.utils import add_common_args, apply_common_args


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a segmentor, depth estimator or '
        'detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', help='mmseg: folder for the predicted maps; '
        'mmdet: .pkl file of the raw detections')
    parser.add_argument('--show', action='store_true',
                        help='show the predictions in a window')
    parser.add_argument('--show-dir',
                        help='folder to write images with predictions drawn')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation (the config\'s '
                        'tta_model and tta_pipeline; mmdet configs without '
                        'them: a horizontal flip, as mmdet\'s test.py)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        raise FileNotFoundError(
            f'Checkpoint {args.checkpoint!r} does not exist. Train one with '
            f'tools/train.py {args.config} or pass the path of a downloaded '
            'or converted checkpoint (tools/model_converters/).')
    cfg = apply_common_args(args)
    cfg.load_from = args.checkpoint
    scope = cfg.default_scope

    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise ValueError('--show/--show-dir need default_hooks.'
                             'visualization in the config.')
        hook.update(draw=True, show=args.show, wait_time=args.wait_time)
        if scope != 'mmdet':  # mmseg's hook draws every 50th image only
            hook['interval'] = 1
        if args.show_dir:
            if scope == 'mmdet':
                hook['test_out_dir'] = args.show_dir
            else:
                cfg.visualizer['save_dir'] = args.show_dir
    if args.tta:  # the config's, or mmdet's flip fallback (as mmdet's tool)
        apply_tta(cfg)
    if args.out and scope != 'mmdet':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    with prepared_runner(cfg, 'test') as runner:
        if args.out and scope == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(
                DumpDetResults(out_file_path=args.out))
        runner.test()


if __name__ == '__main__':
    main()
