"""A tiny, randomly initialised T5 encoder + tokenizer, built offline
(plumbing for tests: NOT a trained model, its features carry no meaning).

Laid out as a T5 folder, or inside a diffusers pipeline folder under the
subfolders the family keeps its T5 in (:data:`T5_SUBFOLDERS`).
"""
import os.path as osp
import string
from typing import Optional

#: The T5 subfolders of diffusers pipelines (model, tokenizer).
T5_SUBFOLDERS = dict(
    sd3=('text_encoder_3', 'tokenizer_3'),
    flux=('text_encoder_2', 'tokenizer_2'),
    pixart=('text_encoder', 'tokenizer'))
#: Whole words of the tiny vocabulary (others split into characters).
WORDS = ('a', 'photo', 'of', 'the', 'cat', 'room', 'wall', 'sky')


def tiny_t5_tokenizer():
    """A T5 (Unigram, SentencePiece-style ``▁``) tokenizer: ``<pad>`` 0,
    ``</s>`` 1, ``<unk>`` 2, lowercase letters, digits and :data:`WORDS`;
    ``model_max_length`` 512 as the released T5 tokenizers."""
    from transformers import T5Tokenizer
    vocab = [('<pad>', 0.), ('</s>', 0.), ('<unk>', 0.), ('\u2581', -2.)]
    for char in string.ascii_lowercase + string.digits + ".,-'":
        vocab += [(char, -5.), ('\u2581' + char, -5.5)]
    vocab += [('\u2581' + word, -3.) for word in WORDS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def build_tiny_t5(folder: str, dim: int = 32, seed: int = 0,
                  family: Optional[str] = None) -> str:
    """Tokenizer + 2-layer ``T5EncoderModel`` (T5 v1.1 layout: gated GELU,
    untied embeddings, as the T5-XXL of SD3, FLUX.1 and PixArt) in
    ``folder``.

    Args:
        folder (str): Output folder (created).
        dim (int): ``d_model``, the width of its features. Defaults to 32
            (the tiny transformers' text width).
        seed (int): Seed of the weights. Defaults to 0.
        family (str, optional): ``'sd3'``, ``'flux'`` or ``'pixart'``:
            write into that pipeline's T5 subfolders of ``folder``
            (:data:`T5_SUBFOLDERS`). Defaults to None (``folder`` itself).

    Returns:
        str: ``folder``.
    """
    import torch
    from transformers import T5Config, T5EncoderModel
    model_sub, tok_sub = T5_SUBFOLDERS[family] if family else ('', '')
    tokenizer = tiny_t5_tokenizer()
    tokenizer.save_pretrained(osp.join(folder, tok_sub))
    cfg = T5Config(
        vocab_size=len(tokenizer), d_model=dim, d_kv=8, d_ff=2 * dim,
        num_layers=2, num_heads=2, relative_attention_num_buckets=8,
        relative_attention_max_distance=16, feed_forward_proj='gated-gelu',
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=0)
    torch.manual_seed(seed)
    T5EncoderModel(cfg).save_pretrained(osp.join(folder, model_sub))
    return folder
