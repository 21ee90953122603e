"""Train an mmseg or mmdet config (its ``default_scope`` decides).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options k=v ...] [--launcher pytorch]
"""
import argparse
import os.path as osp
import sys

# Run from a checkout, the checkout's mmdiff wins over an installed copy.
_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

from mmdiff.apis import apply_amp, prepared_runner
from mmdiff.utils import add_common_args, apply_common_args
from mmdiff.utils.work_dir import latest_checkpoint


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a segmentor, depth estimator or detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or (no value) from the '
        'latest checkpoint in the work dir')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: AmpOptimWrapper (fp16) on GPU; on '
        'CPU the mmdiff backbone under bf16 autocast (amp_dtype)')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate by the actual batch size '
        '(needs auto_scale_lr in the config)')
    add_common_args(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = apply_common_args(args)
    if args.amp:  # GPU: AmpOptimWrapper; CPU: the backbone's bf16 autocast
        print(f'--amp: {apply_amp(cfg)}')
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr=dict(enable=False, '
                'base_batch_size=N) in the config.')
        cfg.auto_scale_lr.enable = True
    # resume priority: an explicit checkpoint > the latest in work_dir (read
    # in this work dir, also when it was copied or moved)
    if args.resume is not None:
        cfg.resume = True
        cfg.load_from = latest_checkpoint(cfg.work_dir) \
            if args.resume == 'auto' else args.resume
    with prepared_runner(cfg, 'train') as runner:
        runner.train()


if __name__ == '__main__':
    main()
