"""Save a tiny, randomly initialised CLIP text encoder + tokenizer (offline
plumbing for the demo; NOT a trained model: its captions carry no meaning).

    python projects/CaptionPrompts/tools/make_demo_text_encoder.py \
        data/demo/tiny_clip [--dim 32]
"""
import argparse
import json
import os
import os.path as osp
import shutil


def _byte_chars():
    """CLIP's byte -> unicode table (GPT-2's ``bytes_to_unicode``)."""
    keep = (list(range(ord('!'), ord('~') + 1)) +
            list(range(ord('¡'), ord('¬') + 1)) +
            list(range(ord('®'), ord('ÿ') + 1)))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def build_tiny_clip(folder: str, dim: int = 32, seed: int = 0) -> str:
    """Byte-level BPE tokenizer + 2-layer ``CLIPTextModel`` in ``folder``."""
    import torch
    import transformers
    os.makedirs(folder, exist_ok=True)
    chars = _byte_chars()
    vocab = {}
    for tok in chars + [c + '</w>' for c in chars]:
        vocab[tok] = len(vocab)
    vocab['<|startoftext|>'] = len(vocab)
    vocab['<|endoftext|>'] = len(vocab)
    src = folder.rstrip('/') + '_src'
    os.makedirs(src, exist_ok=True)
    with open(osp.join(src, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)
    with open(osp.join(src, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n')
    tokenizer = transformers.CLIPTokenizer.from_pretrained(src)
    tokenizer.save_pretrained(folder)
    shutil.rmtree(src)
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=dim, intermediate_size=2 * dim,
        num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    transformers.CLIPTextModel(cfg).save_pretrained(folder)
    return folder


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out')
    parser.add_argument('--dim', type=int, default=32)
    args = parser.parse_args()
    print(build_tiny_clip(args.out, args.dim))
