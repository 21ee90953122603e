"""Prepare a checkpoint trained here for release (OpenMMLab convention).

    python tools/model_converters/publish_model.py work_dirs/x/iter_80000.pth \
        vpd_sd15-fpn_8xb2-80k_ade20k-512x512.pth

Keeps ``state_dict`` and ``meta`` (the training state ``optimizer``,
``message_hub``, ``param_schedulers`` and the like are removed), saves it,
and names the file ``<out stem>-<first 8 hex digits of its sha256>.pth``,
e.g. ``vpd_sd15-fpn_8xb2-80k_ade20k-512x512-1a2b3c4d.pth``. The file is
written to a temporary name and renamed once complete.
"""
import argparse
import sys

from mmdiff.converters import load_source
from mmdiff.utils.checkpoint_io import CheckpointError
from mmdiff.utils.fileio import atomic_write, sha256_file, torch_save

KEEP = ('state_dict', 'meta')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Strip training state from a checkpoint and give it a '
        'hash-suffixed name.')
    parser.add_argument('in_file', help='input checkpoint')
    parser.add_argument('out_file', help='output name, e.g. model.pth; the '
                        'written file is model-<sha256[:8]>.pth')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow a full unpickle (trusted files only)')
    return parser.parse_args(argv)


def publish(in_file: str, out_file: str, trust_pickle: bool = False) -> str:
    """Strip, save and hash-rename; returns the final path."""
    checkpoint = load_source(in_file, trust_pickle=trust_pickle)
    if 'state_dict' not in checkpoint:
        raise ValueError(f'{in_file} has no state_dict (keys: '
                         f'{sorted(checkpoint)[:10]}); not an mmengine '
                         'checkpoint.')
    removed = sorted(k for k in checkpoint if k not in KEEP)
    published = {k: checkpoint[k] for k in KEEP if k in checkpoint}
    stem = out_file[:-4] if out_file.endswith('.pth') else out_file
    # the complete file appears in one step, named from its own bytes
    final = atomic_write(
        stem + '.pth', lambda tmp: torch_save(published, tmp),
        action=f'publishing {stem}',
        final_name=lambda tmp: f'{stem}-{sha256_file(tmp)[:8]}.pth')
    print(f'removed: {", ".join(removed) or "nothing"}')
    print(f'published {final}')
    return final


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        publish(args.in_file, args.out_file, args.trust_pickle)
    except (CheckpointError, FileNotFoundError, OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
