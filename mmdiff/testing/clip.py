"""A tiny, randomly initialised CLIP text encoder + tokenizer, built
offline (plumbing for tests and the CaptionPrompts demo; NOT a trained
model: its captions carry no meaning)."""
import json
import os
import os.path as osp
import shutil
from typing import Optional, Sequence


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


# A few BPE merges, so that tokenisation is not byte-by-byte only.
WORD_MERGES = ('p h', 'o t', 'ph ot', 'a t</w>', 'c at</w>')


def build_tiny_clip(folder: str, dim: int = 32, seed: int = 0,
                    merges: Sequence[str] = (),
                    intermediate_size: Optional[int] = None) -> str:
    """Byte-level BPE tokenizer + 2-layer ``CLIPTextModel`` in ``folder``.

    Args:
        folder (str): Output folder (created).
        dim (int): Hidden width. Defaults to 32 (the tiny U-Net's
            cross-attention width).
        seed (int): Seed of the weights. Defaults to 0.
        merges (Sequence[str]): BPE merges, e.g. :data:`WORD_MERGES`.
            Defaults to () (bytes only, the CaptionPrompts demo's).
        intermediate_size (int, optional): MLP width. Defaults to None
            (``2 * dim``).

    Returns:
        str: ``folder``.
    """
    import torch
    import transformers
    os.makedirs(folder, exist_ok=True)
    chars = _byte_chars()
    vocab = {}
    for tok in chars + [c + '</w>' for c in chars]:
        vocab[tok] = len(vocab)
    for merge in merges:
        vocab[merge.replace(' ', '')] = len(vocab)
    vocab['<|startoftext|>'] = len(vocab)
    vocab['<|endoftext|>'] = len(vocab)
    src = folder.rstrip('/') + '_src'
    os.makedirs(src, exist_ok=True)
    with open(osp.join(src, 'vocab.json'), 'w') as f:
        json.dump(vocab, f)
    with open(osp.join(src, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + ''.join(m + '\n' for m in merges))
    tokenizer = transformers.CLIPTokenizer.from_pretrained(src)
    tokenizer.save_pretrained(folder)
    shutil.rmtree(src)
    cfg = transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=dim,
        intermediate_size=intermediate_size or 2 * dim,
        num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    transformers.CLIPTextModel(cfg).save_pretrained(folder)
    return folder


def build_test_clip(folder: str, seed: int = 0) -> str:
    """The tests' tiny CLIP: :data:`WORD_MERGES`, MLP width 37, width 32."""
    return build_tiny_clip(folder, seed=seed, merges=WORD_MERGES,
                           intermediate_size=37)
