"""Save a tiny, randomly initialised CLIP text encoder + tokenizer (offline
plumbing for the demo; NOT a trained model: its captions carry no meaning).

    python projects/CaptionPrompts/tools/make_demo_text_encoder.py \
        data/demo/tiny_clip [--dim 32]
"""
import argparse

from mmdiff.testing import build_tiny_clip

if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out')
    parser.add_argument('--dim', type=int, default=32)
    args = parser.parse_args()
    print(build_tiny_clip(args.out, args.dim))
