"""Build K x D class text embeddings with a CLIP or T5 text encoder.

    python tools/misc/build_class_embeddings.py --classes ade20k \
        --text-encoder openai/clip-vit-large-patch14 --templates vpd \
        --out data/embeddings/ade20k_clip-vit-large-patch14_vpd.pth

``--classes``: ade20k | cityscapes | voc | coco | nyu_scenes (read from the
installed mmseg/mmdet metainfo) or a text file with one name per line.
``--text-encoder``: a hub id, a local CLIP or T5 folder, or a diffusers
pipeline folder (its text_encoder/ and tokenizer/ are used, or
``--text-encoder-subfolder``: SD3 / SD3.5's T5 text_encoder_3 (+
tokenizer_3), FLUX.1's text_encoder_2, PixArt-Sigma's text_encoder).
T5 ``--output pooled`` is the mean over the prompt's non-padding tokens
(T5 has no pooler).
``--templates``: vpd ("a photo of a {}") | imagenet80 (CLIP's 80 ImageNet
templates) | a text file with one template containing "{}" per line.
``--mmseg-mean-row``: append the mean of all rows as row K, the layout of the
``class_embeddings`` buffer in mmseg's VPD depth checkpoints (27 scenes + 1
mean = 28 rows). Do not use it for a file that mmseg's ``VPD(class_embed_path=
..., class_embed_select=True)`` will read: that backbone appends the row
itself.

The file (.pth or .safetensors) holds the tensor and its metadata (model,
templates, classes, output, max_length, mmdiff version); a ``<out>.json``
sidecar repeats the metadata. See docs/class_embeddings.md.
"""
import argparse
import os.path as osp
import re
import sys
import time

from mmdiff.models.text import (OUTPUTS, TEMPLATE_SETS, append_mean_row,
                                compute_class_embeddings,
                                save_class_embeddings)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build class text embeddings (K x D) with a CLIP or T5 '
        'text encoder, for mmdiff backbones (VPD, DiTBackbone).')
    parser.add_argument(
        '--classes', required=True,
        help='ade20k | cityscapes | voc | coco | nyu_scenes, or a text file '
        'with one class name per line')
    parser.add_argument(
        '--text-encoder', required=True,
        help='hub id (e.g. openai/clip-vit-large-patch14), local CLIP or T5 '
        'folder, or diffusers pipeline folder / hub id')
    parser.add_argument(
        '--text-encoder-subfolder',
        help='the encoder\'s subfolder in a pipeline (its tokenizer: '
        'text_encoder_N -> tokenizer_N): SD3/SD3.5 T5: text_encoder_3, '
        'FLUX.1 T5: text_encoder_2, PixArt-Sigma T5: text_encoder. '
        'Default: text_encoder/ if present, else the folder itself')
    parser.add_argument(
        '--templates', default='vpd',
        help=f'{" | ".join(TEMPLATE_SETS)} or a text file with one template '
        '("{}" = class name) per line. Default: vpd')
    parser.add_argument('--output', choices=OUTPUTS, default='pooled',
                        help='pooled: (K, D) CLIP EOS features (VPD), T5: '
                        'mean over the prompt\'s non-padding tokens; '
                        'tokens: (K, L, D) last hidden states. Default: '
                        'pooled')
    parser.add_argument('--max-length', type=int, default=77,
                        help='tokenizer length (VPD NYU: 20). Default: 77')
    parser.add_argument('--normalize', action='store_true',
                        help='L2-normalise per template and after averaging '
                        '(not VPD)')
    parser.add_argument('--keep-underscores', action='store_true',
                        help='keep "_" in class names (default: written as '
                        'spaces in the prompts)')
    parser.add_argument(
        '--mmseg-mean-row', action='store_true',
        help='append the mean row (K+1 rows), like the class_embeddings '
        "buffer in mmseg's VPD depth checkpoints")
    parser.add_argument('--out', help='.pth or .safetensors file. Default: '
                        'data/embeddings/<classes>_<model>_<templates>.pth')
    parser.add_argument('--revision', help='hub revision (branch, tag, '
                        'commit)')
    parser.add_argument('--local-files-only', action='store_true',
                        help='never use the network (hub cache or local '
                        'folders only)')
    parser.add_argument('--device', default='cpu', help='Default: cpu')
    parser.add_argument('--batch-size', type=int, default=256,
                        help='prompts per forward pass. Default: 256')
    parser.add_argument('--no-progress', action='store_true')
    return parser.parse_args(argv)


def _slug(text: str) -> str:
    base = osp.splitext(osp.basename(osp.normpath(text)))[0] or text
    return re.sub(r'[^A-Za-z0-9.-]+', '-', base).strip('-').lower()


def default_out(args: argparse.Namespace) -> str:
    model = _slug(args.text_encoder)
    if args.text_encoder_subfolder:
        model += '-' + _slug(args.text_encoder_subfolder)
    parts = [_slug(args.classes), model, _slug(args.templates)]
    if args.output != 'pooled':
        parts.append(args.output)
    if args.max_length != 77:
        parts.append(f'len{args.max_length}')
    if args.mmseg_mean_row:
        parts.append('meanrow')
    return osp.join('data', 'embeddings', '_'.join(parts) + '.pth')


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out or default_out(args)
    start = time.time()
    embeddings, meta = compute_class_embeddings(
        args.classes, args.text_encoder, templates=args.templates,
        output=args.output, max_length=args.max_length,
        local_files_only=args.local_files_only, device=args.device,
        batch_size=args.batch_size, progress=not args.no_progress,
        normalize=args.normalize,
        underscore_to_space=not args.keep_underscores,
        revision=args.revision,
        text_encoder_subfolder=args.text_encoder_subfolder,
        return_metadata=True)
    if args.mmseg_mean_row:
        embeddings = append_mean_row(embeddings)
        meta['mean_row'] = True
        meta['shape'] = list(embeddings.shape)
    meta['source_args'] = dict(classes=args.classes,
                               templates=args.templates)
    save_class_embeddings(out, embeddings, meta)
    shape = ' x '.join(str(s) for s in embeddings.shape)
    print(f'class embeddings: {shape} ({len(meta["classes"])} classes'
          f'{" + mean row" if args.mmseg_mean_row else ""}, '
          f'{args.output}, max_length {args.max_length})')
    sub = args.text_encoder_subfolder
    print(f'model:     {meta["model"]}{f" ({sub})" if sub else ""}, '
          f'{meta["encoder"]} ({meta["model_identity"]})')
    print(f'templates: {args.templates} ({len(meta["templates"])}, e.g. '
          f'{meta["templates"][0]!r})')
    print(f'written:   {out} (+ {out}.json) in {time.time() - start:.1f}s')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (OSError, ValueError) as e:  # user errors: the message, no trace
        sys.exit(f'build_class_embeddings: error: {e}')
