"""Convert a Meta Prompts checkpoint (fudan-zvg/meta-prompts) to mmdiff.

    python tools/model_converters/meta_prompts_to_mmdiff.py SRC DST \
        [--original-config v1-inference.yaml]

SRC: the source's ADE20K segmentation checkpoint (``MetaPromptsSeg``,
mmseg 0.x) or NYU/KITTI depth checkpoint (``MetaPromptDepth``,
``{'model': ...}``). DST: an mmengine checkpoint ``{'state_dict', 'meta'}``,
written atomically, that loads strictly into the configs of
``projects/MetaPrompts/configs/meta-prompts_sd15-*`` (``load_from=DST``).
The ldm U-Net/VAE keys are renamed by mmdiff's converter (diffusers'
helpers, ``--original-config``: default SD v1 ``v1-inference.yaml``, which
the source uses); the refinement steps' ``cross_unet_conv{k}`` are checked
to be the U-Net's shared ``out`` and dropped; DDPM buffers are dropped.
"""
import argparse
import os.path as osp
import sys

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isdir(osp.join(_ROOT, 'projects', 'MetaPrompts')):
    sys.path.insert(0, _ROOT)  # projects.MetaPrompts from a checkout

from mmdiff.converters import (ConversionError, load_source,  # noqa: E402
                               save_checkpoint, sha256_file)
from mmdiff.utils.checkpoint_io import CheckpointError  # noqa: E402
from mmdiff.version import __version__  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description='Convert a Meta Prompts (segmentation or depth) '
        'checkpoint to an mmdiff checkpoint.')
    parser.add_argument('src', help='source checkpoint (.pth, .ckpt)')
    parser.add_argument('dst', help='output mmengine checkpoint (.pth)')
    parser.add_argument('--original-config', default=None,
                        help='ldm yaml of the U-Net/VAE; default: SD v1.x '
                        'v1-inference.yaml')
    parser.add_argument('--trust-pickle', action='store_true',
                        help='allow a full unpickle when the source cannot '
                        'be read weights-only (trusted sources only)')
    args = parser.parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        print('error: DST must differ from SRC', file=sys.stderr)
        return 2
    from projects.MetaPrompts.meta_prompts.converter import \
        convert_meta_prompts
    try:
        source = load_source(args.src, trust_pickle=args.trust_pickle)
        result = convert_meta_prompts(source, args.original_config)
    except (ConversionError, ValueError, FileNotFoundError,
            CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = dict(
        mmdiff_version=__version__,
        converted_from=dict(
            file=osp.basename(args.src), sha256=sha256_file(args.src),
            original_config=args.original_config, **result.meta()))
    save_checkpoint(dict(state_dict=result.state_dict, meta=meta), args.dst)
    print(result.summary())
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
