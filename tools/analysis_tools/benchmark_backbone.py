"""Benchmark mmdiff's VPD against mmseg 1.2's VPD on the same weights.

    python tools/analysis_tools/benchmark_backbone.py \
        --unet-config sd15 --input-size 512 --batch 1 --json bench.json

One invocation measures, for each case ``<impl>:<mode>`` (impl: mmdiff |
mmseg | mmdiff_p2, mode: infer | train) in a FRESH subprocess, after warm-up
and over several repeats:

* ``infer``: backbone forward latency under ``no_grad`` (VAE encode + U-Net
  up to the last tap), the U-Net alone, its FLOPs (``FlopCounterMode``) and
  the achieved FLOP/s as a fraction of this machine's fp32 matmul rate,
  measured in the same run; peak memory.
* ``train``: one full training step (forward, backward, optimizer step via
  an mmengine optim wrapper) and its peak memory, split into parameters,
  gradients, optimizer state and activations.

``dit`` is mmdiff's ``DiTBackbone`` at SD3.5-medium's shapes (random
weights), reported against ``mmdiff`` (the SD1.5-shaped U-Net) in its own
table. ``mmdiff_p2`` is mmdiff's VPD with ``vae_taps`` (``--vae-taps``,
default the stride-4 level of the VAE encoder), reported against ``mmdiff``
in a second table: the extra cost of the finer level. ``--neck`` times each
backbone with mmdet's FPN on all its outputs (backbone + neck).

Same weights for both (a seeded SD-shaped ldm U-Net + VAE written as an SD
single file, converted with diffusers' helpers), same class embeddings,
adapter and images: how, and how memory is measured, in ``mmdiff.benchmark``
(``builders.py``, ``weights.py``, ``measure.py``).

This file is the command line; the library code (shared weights, builders,
measurement, report) is ``mmdiff.benchmark``.
"""
import argparse
import json
import os.path as osp
import sys
import tempfile

import torch

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)  # this checkout's mmdiff, as tools/train.py

from mmdiff.benchmark import (OPTIMIZERS, markdown, run_case,  # noqa: E402
                              summarise)
from mmdiff.benchmark.cases import RESULT_TAG, run_cases  # noqa: E402
from mmdiff.testing.ldm import LDM_CONFIGS  # noqa: E402

__all__ = ['main', 'markdown', 'summarise']


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Latency, FLOP/s and peak memory of mmdiff VPD vs mmseg '
        'VPD on the same weights and inputs (one fresh process per case).')
    parser.add_argument('--unet-config', choices=sorted(LDM_CONFIGS),
                        default='sd15', help='SD-shaped model (random '
                        'weights). Default: sd15')
    parser.add_argument('--input-size', type=int, default=512,
                        help='square input side, a multiple of 64. '
                        'Default: 512')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'],
                        default='fp32', help='fp32, or autocast to bf16/fp16')
    parser.add_argument('--grad-ckpt', action='store_true',
                        help='gradient checkpointing (diffusers / ldm own)')
    parser.add_argument('--attn-maps', action='store_true',
                        help='collect cross-attention maps (mmdiff only: '
                        "mmseg's path is broken)")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--vae-slicing', action='store_true',
                        help='mmdiff: encode a batch one image at a time '
                        '(diffusers AutoencoderKL.enable_slicing)')
    parser.add_argument('--optimizer', choices=sorted(OPTIMIZERS),
                        default='sgd', help='train step optimizer (mmengine '
                        'registry). Default: sgd (momentum 0.9)')
    parser.add_argument('--lora-rank', type=int, default=0,
                        help='mmdiff: freeze the U-Net and train LoRA '
                        'adapters of this rank (peft). Default: 0 (off)')
    parser.add_argument('--freeze-unet', action='store_true')
    parser.add_argument('--vae-taps', type=int, nargs='+', default=[1],
                        help='mmdiff_p2 cases: VAE encoder down blocks '
                        'added as levels (SD: 0 = stride 2, 1 = stride 4). '
                        'Default: 1')
    parser.add_argument('--dit-config', choices=['sd35m', 'tiny'],
                        default='sd35m', help='dit cases: SD3.5-medium '
                        'shapes, or the tiny SD3.5 layout (tests). Default: '
                        'sd35m')
    parser.add_argument('--dit-taps', type=int, nargs='+',
                        default=[5, 11, 17, 23],
                        help='dit cases: DiTBackbone taps (SD3.5-medium '
                        'blocks). Default: 5 11 17 23 (configs/dit)')
    parser.add_argument('--neck', action='store_true',
                        help="time backbone + mmdet's FPN on all outputs")
    parser.add_argument('--num-tokens', type=int, default=150,
                        help='class embeddings K (ADE20K: 150)')
    parser.add_argument('--cases',
                        default='mmdiff:infer,mmseg:infer,mmdiff:train,'
                        'mmseg:train', help='comma list of <impl>:<mode>')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-flops', action='store_true',
                        help='skip FLOP counting (one extra forward)')
    parser.add_argument('--check', action='store_true',
                        help='save both backbones\' features and report '
                        'their max abs difference')
    parser.add_argument('--work-dir', default=None,
                        help='where the shared weights are written (reused '
                        'across runs). Default: a folder under the temp dir')
    parser.add_argument('--timeout', type=float, default=3600,
                        help='seconds per case')
    parser.add_argument('--json', dest='json_out', help='write the report')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--save-features', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.input_size % 64:
        parser.error('--input-size must be a multiple of 64')
    if args.work_dir is None:
        args.work_dir = osp.join(
            tempfile.gettempdir(),
            f'mmdiff_bench_{args.unet_config}_k{args.num_tokens}_'
            f's{args.seed}')
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child:
        impl, _, mode = args.child.partition(':')
        print(RESULT_TAG + json.dumps(run_case(args, impl, mode)),
              flush=True)
        return
    report = run_cases(args, lambda extra: [
        sys.executable, osp.abspath(__file__), *argv, *extra])
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(report, f, indent=1)
    print(report['markdown'])
    if 'max_abs_diff' in report:
        print('max |mmdiff - mmseg| per output: ' + ', '.join(
            f'{d:.2e}' if d is not None else 'shape differs'
            for d in report['max_abs_diff']))


if __name__ == '__main__':
    main()
