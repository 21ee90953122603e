"""The pretrainer's training step under mmengine's Runner vs a plain loop.

    python tools/analysis_tools/benchmark_pretrainer.py [--config CONFIG]
        [--random-weights] [--unet tiny|sd15] [--iters 20] [--warmup 3]
        [--batch 8] [--size 128] [--threads N] [--no-ema] [--out FILE.json]

Any pretraining config (default: the tiny demo one), measured twice, each
half in a fresh process of its own (so each peak memory is its own): first
``Runner.train()`` on the config, timing each iteration from
``before_train_iter`` to the end of ``after_train_iter`` (data loading
excluded); then a plain PyTorch + diffusers loop (normalise, VAE encode,
DDPM noise, U-Net, MSE with the config's min-SNR / prediction type,
backward, clip, step, EMA) on the batches the runner got.

Both halves build the model from the config with the same seed (same
U-Net, LoRA adapters, gradient checkpointing, dtype) and train the same
parameters with the config's optimizer (type and hyper-parameters) and grad
clip; the config's ``EMAHook`` is kept (``--no-ema`` drops it), and the
plain loop then keeps an EMA of the trainable weights with diffusers'
``EMAModel`` (decay = 1 - momentum). The rest of the config is dropped: the
data are the demo's generated scenes (``--size``, ``--batch``), the lr is
constant, no other custom hooks (demo VAE, export, NaN guard), no
checkpoints; conditioning must be ``'none'`` (the scenes have no captions
or classes).

``--random-weights``: a config with ``pretrained=<id>`` builds the released
model's shapes (``real_unet_cfg(id)``, ``SD_VAE``) with random weights
instead: offline, and the same memory and time. ``--unet tiny|sd15``
swaps in that U-Net and VAE (random) whatever the config has.

Prints the median step time of each half and their ratio (goal: runner /
plain <= 1.0), then per half the peak RSS of the process (``ru_maxrss``),
``torch.cuda.max_memory_allocated`` on CUDA, and the static memory measured
from the tensors: U-Net parameters, trainable parameters, gradients,
optimizer state, EMA copy, VAE. ``--out`` writes it all (and the host) as
JSON.
"""
import argparse
import os.path as osp
import sys
import tempfile

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

from mmdiff.benchmark import pretrainer  # noqa: E402

CONFIG = osp.join(_ROOT, 'configs', 'pretrain', pretrainer.DEMO)


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=CONFIG)
    p.add_argument('--random-weights', action='store_true')
    p.add_argument('--unet', choices=['tiny', 'sd15'], default=None,
                   help='swap in this U-Net and VAE (random weights); '
                   "default: the config's")
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--threads', type=int, default=None,
                   help='torch intra-op threads of each half')
    p.add_argument('--no-ema', action='store_true',
                   help="drop the config's EMAHook (and the plain EMA)")
    p.add_argument('--work-dir', default=None)
    p.add_argument('--out', default=None, help='write the results as JSON')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.work_dir = osp.abspath(args.work_dir or
                                tempfile.mkdtemp(prefix='bench_pre-'))
    result = pretrainer.benchmark(args)
    print(pretrainer.report(result))
    return result


if __name__ == '__main__':
    main()
