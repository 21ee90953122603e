"""Convert VPD / mmsegmentation VPD / Stable Diffusion checkpoints to mmdiff.

    python tools/model_converters/vpd_to_mmdiff.py SRC DST \
        [--original-config v1-inference.yaml] [--class-embeddings FILE] \
        [--save-class-embeddings FILE]

The source layout is detected from its keys:

* VPD segmentation (``unet.unet.diffusion_model.*``, ``encoder_vq.*``,
  ``neck.*``, ``decode_head.*``),
* VPD depth (``{'model': ...}`` with ``encoder.unet.unet.diffusion_model.*``,
  ``encoder.{layer1,layer2,out_layer}``, ``decoder.*``, ``last_layer_depth``;
  the head becomes mmseg's ``VPDDepthHead``),
* mmsegmentation VPD depth (``backbone.unet.unet.diffusion_model.*``; the mean
  row mmseg appends to the 27 NYU scene embeddings is dropped, mmdiff adds it
  at run time),
* a plain Stable Diffusion single file (``model.diffusion_model.*``;
  ``mmdiff.VPD`` also reads these directly via ``pretrained=<file>``).

ldm U-Net and VAE weights are renamed to diffusers names by diffusers' own
conversion helpers, for the ldm config in ``--original-config`` (default: SD
v1.x ``v1-inference.yaml``, what VPD and mmseg use). DDPM schedule buffers,
the VAE decoder and the text encoder are dropped; any other key that cannot
be placed stops the conversion with the full list. DST is an mmengine
checkpoint ``{'state_dict', 'meta'}`` written atomically; it loads with
``load_from=DST`` (or ``mmengine.runner.load_checkpoint(model, DST,
strict=True)``) into the mmdiff model of the matching config. ``meta``
records the layout, the diffusers ``unet_cfg``/``vae_cfg`` and what was
dropped.
"""
import argparse
import os.path as osp
import sys

from mmdiff.converters import (CLASS_EMBEDDINGS, ConversionError,
                               convert_state_dict, load_source,
                               save_checkpoint, sha256_file)
from mmdiff.utils.checkpoint_io import CheckpointError
from mmdiff.version import __version__


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a VPD (segmentation or depth), mmsegmentation '
        'VPD or Stable Diffusion checkpoint to an mmdiff checkpoint.')
    parser.add_argument('src', help='source checkpoint (.pth, .ckpt, '
                        '.safetensors)')
    parser.add_argument('dst', help='output mmengine checkpoint (.pth)')
    parser.add_argument(
        '--original-config', default=None,
        help='ldm yaml of the U-Net/VAE (model.params.unet_config, '
        'first_stage_config); default: SD v1.x v1-inference.yaml')
    parser.add_argument(
        '--class-embeddings', default=None,
        help='(K, D) class embeddings file to use instead of the '
        "checkpoint's (or when it has none), e.g. from "
        'tools/misc/build_class_embeddings.py')
    parser.add_argument(
        '--save-class-embeddings', default=None,
        help='also write the converted class embeddings to this .pth/'
        '.safetensors file (for the config\'s backbone.class_embeddings)')
    parser.add_argument(
        '--trust-pickle', action='store_true',
        help='allow a full unpickle when the source cannot be read '
        'weights-only (runs code from the file: trusted sources only)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if osp.abspath(args.src) == osp.abspath(args.dst):
        print('error: DST must differ from SRC', file=sys.stderr)
        return 2
    emb = None
    if args.class_embeddings:
        from mmdiff.models.text import load_class_embeddings
        emb = load_class_embeddings(args.class_embeddings)[0]
    try:
        source = load_source(args.src, trust_pickle=args.trust_pickle)
        result = convert_state_dict(source, args.original_config, emb)
    except (ConversionError, ValueError, FileNotFoundError,
            CheckpointError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    del source
    tensor = result.state_dict.get(CLASS_EMBEDDINGS)
    if args.save_class_embeddings and tensor is None:
        print('error: --save-class-embeddings: the checkpoint has no class '
              'embeddings (pass --class-embeddings FILE)', file=sys.stderr)
        return 1
    meta = dict(
        mmdiff_version=__version__,
        converted_from=dict(
            file=osp.basename(args.src), sha256=sha256_file(args.src),
            original_config=args.original_config,
            class_embeddings=args.class_embeddings,
            **result.meta()))
    save_checkpoint(dict(state_dict=result.state_dict, meta=meta), args.dst)
    print(result.summary())
    print(f'saved {args.dst}')
    if args.save_class_embeddings:
        from mmdiff.models.text import save_class_embeddings
        save_class_embeddings(
            args.save_class_embeddings, tensor,
            dict(source=osp.basename(args.src), layout=result.layout.name,
                 mean_row=False, shape=list(tensor.shape)))
        print(f'saved class embeddings {tuple(tensor.shape)} to '
              f'{args.save_class_embeddings}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
