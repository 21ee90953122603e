"""Class embeddings through a T5 encoder (SD3 / SD3.5, FLUX.1, PixArt-Sigma),
from a tiny random T5 built here (``mmdiff.testing.build_tiny_t5``) and laid
out as the pipelines keep it; nothing is downloaded.

References are computed directly with ``transformers`` (``T5EncoderModel``
and the saved tokenizer): ``'tokens'`` is its ``last_hidden_state`` under
the prompt's attention mask; ``'pooled'`` (mmdiff's own reduction, T5 has no
pooler) is checked against the mean over the positions of the prompt
encoded alone, without any padding.
"""
import os
import os.path as osp
import shutil

import pytest
import torch

from mmdiff.models.text import (compute_class_embeddings, encoder,
                                get_or_build_class_embeddings,
                                load_class_embeddings, load_text_encoder,
                                locate_text_encoder)
from mmdiff.testing import build_tiny_clip, build_tiny_t5

transformers = pytest.importorskip('transformers')

NAMES = ['cat', 'living_room', 'sky']
TEMPLATES = ['a photo of a {}', 'the {}']
KW = dict(local_files_only=True, progress=False)


@pytest.fixture(scope='module')
def sd3_dir(tmp_path_factory):
    """An SD3-style pipeline folder: a 16-wide CLIP in text_encoder/ +
    tokenizer/, the 32-wide T5 in text_encoder_3/ + tokenizer_3/."""
    root = str(tmp_path_factory.mktemp('sd3') / 'pipe')
    build_tiny_t5(root, family='sd3')
    clip = build_tiny_clip(osp.join(root, 'text_encoder'), dim=16)
    os.makedirs(osp.join(root, 'tokenizer'))
    for name in os.listdir(clip):
        if not name.startswith(('config', 'model')):
            shutil.move(osp.join(clip, name), osp.join(root, 'tokenizer'))
    return root


def _direct(root, sub, tok_sub, prompts, max_length=None):
    """``(pooled, tokens)`` of ``prompts`` straight from transformers:
    pooled = mean over every position of each prompt encoded alone
    (unpadded); tokens = last_hidden_state padded to ``max_length`` with
    the attention mask."""
    tok = transformers.AutoTokenizer.from_pretrained(osp.join(root, tok_sub))
    model = transformers.T5EncoderModel.from_pretrained(
        osp.join(root, sub)).eval()
    with torch.no_grad():
        pooled = torch.stack([
            model(input_ids=tok([p], return_tensors='pt').input_ids)
            .last_hidden_state[0].mean(0) for p in prompts])
        tokens = None
        if max_length is not None:
            enc = tok(prompts, padding='max_length', max_length=max_length,
                      truncation=True, return_tensors='pt')
            tokens = model(input_ids=enc.input_ids,
                           attention_mask=enc.attention_mask
                           ).last_hidden_state
    return pooled, tokens


def test_t5_values_equal_transformers(sd3_dir):
    emb, meta = compute_class_embeddings(
        NAMES, sd3_dir, TEMPLATES, text_encoder_subfolder='text_encoder_3',
        return_metadata=True, **KW)
    toks = compute_class_embeddings(
        NAMES, sd3_dir, TEMPLATES, output='tokens', max_length=12,
        text_encoder_subfolder='text_encoder_3', **KW)
    assert emb.shape == (3, 32) and toks.shape == (3, 12, 32)
    assert meta['encoder'] == 't5' and meta['pooling'] == \
        'mean_over_non_padding_tokens'
    assert meta['text_encoder_subfolder'] == 'text_encoder_3'
    for i, name in enumerate(NAMES):
        prompts = [t.format(name.replace('_', ' ')) for t in TEMPLATES]
        pooled, tokens = _direct(sd3_dir, 'text_encoder_3', 'tokenizer_3',
                                 prompts, max_length=12)
        torch.testing.assert_close(emb[i], pooled.mean(0), rtol=0,
                                   atol=1e-5)
        torch.testing.assert_close(toks[i], tokens.mean(0), rtol=0,
                                   atol=1e-6)
    # the mask keeps padding out: the pooled feature ignores max_length
    short = compute_class_embeddings(
        NAMES, sd3_dir, TEMPLATES, max_length=16,
        text_encoder_subfolder='text_encoder_3', **KW)
    torch.testing.assert_close(short, emb, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r'max_length must be in \[2, 512\]'):
        compute_class_embeddings(NAMES, sd3_dir, max_length=513,
                                 text_encoder_subfolder='text_encoder_3',
                                 **KW)


def test_loaded_pair_and_load_text_encoder(sd3_dir):
    model, tok = load_text_encoder(sd3_dir, local_files_only=True,
                                   subfolder='text_encoder_3')
    assert isinstance(model, transformers.T5EncoderModel)
    ref = compute_class_embeddings(NAMES, sd3_dir,
                                   text_encoder_subfolder='text_encoder_3',
                                   **KW)
    torch.testing.assert_close(
        compute_class_embeddings(NAMES, (model, tok), **KW), ref, rtol=0,
        atol=0)


@pytest.mark.parametrize('family,sub,given', [
    ('sd3', 'text_encoder_3', 'text_encoder_3'),
    ('flux', 'text_encoder_2', 'text_encoder_2'),
    ('pixart', 'text_encoder', None)])  # PixArt: the default subfolder
def test_pipeline_layouts(family, sub, given, tmp_path):
    root = build_tiny_t5(str(tmp_path / family), family=family, seed=2)
    loc = locate_text_encoder(root, local_files_only=True, subfolder=given)
    assert (loc['model_sub'], loc['kind']) == (sub, 't5')
    assert loc['tok_sub'] == sub.replace('text_encoder', 'tokenizer')
    emb = compute_class_embeddings(NAMES, root, text_encoder_subfolder=given,
                                   **KW)
    pooled, _ = _direct(root, sub, loc['tok_sub'],
                        [f'a photo of a {n.replace("_", " ")}'
                         for n in NAMES])
    torch.testing.assert_close(emb, pooled, rtol=0, atol=1e-5)


def test_subfolder_picks_the_encoder(sd3_dir):
    clip = locate_text_encoder(sd3_dir, local_files_only=True)
    assert (clip['model_sub'], clip['kind']) == ('text_encoder', 'clip')
    assert compute_class_embeddings(NAMES, sd3_dir, **KW).shape == (3, 16)
    with pytest.raises(OSError, match=r"no text_encoder_2/config.json; its "
                       r"subfolders with a config.json: \['text_encoder', "
                       r"'text_encoder_3'\]"):
        locate_text_encoder(sd3_dir, local_files_only=True,
                            subfolder='text_encoder_2')


def test_full_t5_folder(tmp_path):
    """A whole T5 (T5ForConditionalGeneration, e.g. google/t5-v1_1-xxl):
    its encoder, the decoder skipped."""
    folder = build_tiny_t5(str(tmp_path / 'enc'))
    cfg = transformers.T5Config.from_pretrained(folder)
    torch.manual_seed(4)
    full = transformers.T5ForConditionalGeneration(cfg).eval()
    full.save_pretrained(tmp_path / 'full')
    for name in os.listdir(folder):
        if name.startswith('tokenizer'):
            shutil.copy(osp.join(folder, name), tmp_path / 'full')
    emb = compute_class_embeddings(['cat'], str(tmp_path / 'full'), **KW)
    ids = transformers.AutoTokenizer.from_pretrained(folder)(
        ['a photo of a cat'], return_tensors='pt').input_ids
    with torch.no_grad():
        ref = full.encoder(input_ids=ids).last_hidden_state.mean(1)
    torch.testing.assert_close(emb, ref, rtol=0, atol=1e-5)


def test_unknown_and_incomplete_encoders(sd3_dir, tmp_path):
    other = tmp_path / 'pipe'
    (other / 'text_encoder').mkdir(parents=True)
    (other / 'text_encoder' / 'config.json').write_text(
        '{"architectures": ["Gemma2Model"], "model_type": "gemma2"}')
    with pytest.raises(ValueError, match=r"Gemma2Model \(model_type "
                       r"'gemma2'\), not a text encoder mmdiff loads.*"
                       r"text_encoder_subfolder.*'text_encoder_3'"):
        compute_class_embeddings(NAMES, str(other), **KW)
    # an incomplete T5: weights missing
    from safetensors.torch import load_file, save_file
    part = tmp_path / 'part'
    shutil.copytree(sd3_dir, part)
    weights = part / 'text_encoder_3' / 'model.safetensors'
    state = load_file(weights)
    state.pop('encoder.final_layer_norm.weight')
    save_file(state, weights, metadata={'format': 'pt'})
    with pytest.raises(ValueError, match='not a complete T5 encoder: 1 '
                       'weights missing'):
        compute_class_embeddings(NAMES, str(part),
                                 text_encoder_subfolder='text_encoder_3',
                                 **KW)


def test_caption_encoder_refuses_t5(sd3_dir):
    from mmdiff.models.text.caption_encoder import CaptionEncoder
    with pytest.raises(ValueError, match='holds a t5 encoder'):
        CaptionEncoder(osp.join(sd3_dir, 'text_encoder_3'),
                       local_files_only=True)


# ---------------------------------------------------------------- cache
def test_cache_hit_and_key_follow_subfolder_and_weights(sd3_dir, tmp_path,
                                                        monkeypatch):
    cache = str(tmp_path / 'cache')
    kw = dict(cache_dir=cache, templates=TEMPLATES, **KW)
    first = get_or_build_class_embeddings(
        NAMES, sd3_dir, text_encoder_subfolder='text_encoder_3', **kw)
    ref = compute_class_embeddings(NAMES, sd3_dir, TEMPLATES,
                                   text_encoder_subfolder='text_encoder_3',
                                   **KW)
    assert torch.equal(first, ref)
    files = sorted(f for f in os.listdir(cache) if f.endswith('tensors'))
    assert len(files) == 1
    assert load_class_embeddings(osp.join(cache, files[0]))[1][
        'encoder'] == 't5'

    def no_load(*args, **kwargs):
        raise AssertionError('cache hit must not load the text encoder')

    with monkeypatch.context() as m:
        m.setattr(encoder, 'load_located', no_load)
        again = get_or_build_class_embeddings(
            NAMES, sd3_dir, text_encoder_subfolder='text_encoder_3', **kw)
        assert torch.equal(again, first)
        # another subfolder (the CLIP) is another entry: a build
        with pytest.raises(AssertionError, match='must not load'):
            get_or_build_class_embeddings(NAMES, sd3_dir, **kw)
    clip = get_or_build_class_embeddings(NAMES, sd3_dir, **kw)
    assert clip.shape == (3, 16)
    # another T5 (other weights) in the same layout: another entry
    other = build_tiny_t5(str(tmp_path / 'other'), family='sd3', seed=1)
    b = get_or_build_class_embeddings(
        NAMES, other, text_encoder_subfolder='text_encoder_3', **kw)
    assert not torch.equal(b, first)
    assert len([f for f in os.listdir(cache) if f.endswith('tensors')]) == 3


def test_hub_id_with_subfolder(sd3_dir, tmp_path, monkeypatch):
    """A pipeline hub id in the local hub cache: the T5 subfolder is part of
    the identity (the cache key)."""
    from huggingface_hub import constants
    cache = tmp_path / 'hub'
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(cache))
    commit = 'c0ffee' * 6 + 'c0ff'
    repo = cache / 'models--mmdiff-test--tiny-sd3'
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    shutil.copytree(sd3_dir, repo / 'snapshots' / commit)
    ref = compute_class_embeddings(NAMES, sd3_dir,
                                   text_encoder_subfolder='text_encoder_3',
                                   **KW)
    emb, meta = compute_class_embeddings(
        NAMES, 'mmdiff-test/tiny-sd3', text_encoder_subfolder='text_encoder_3',
        return_metadata=True, **KW)
    assert torch.equal(emb, ref)
    assert meta['model_identity'] == \
        f'hub:mmdiff-test/tiny-sd3@{commit}/text_encoder_3'
    clip = locate_text_encoder('mmdiff-test/tiny-sd3', local_files_only=True,
                               subfolder='text_encoder')
    assert encoder.encoder_identity(clip) != meta['model_identity']
    assert clip['kind'] == 'clip'


def test_list_of_encoders_with_subfolders(sd3_dir, tmp_path):
    """Several encoders of one pipeline (CLIP + T5), concatenated along the
    width as for SDXL's two CLIPs; one subfolder per encoder."""
    from mmdiff.models.conditioning.class_embeds import \
        resolve_class_embeddings
    spec = dict(class_names=NAMES, text_encoder=[sd3_dir, sd3_dir],
                text_encoder_subfolder=['text_encoder', 'text_encoder_3'],
                cache_dir=str(tmp_path), progress=False)
    emb, learnable = resolve_class_embeddings(spec, 48, True)
    assert emb.shape == (3, 48) and not learnable
    t5 = compute_class_embeddings(NAMES, sd3_dir,
                                  text_encoder_subfolder='text_encoder_3',
                                  **KW)
    assert torch.equal(emb[:, 16:], t5)
    with pytest.raises(ValueError, match='1 entries for 2 text encoders'):
        resolve_class_embeddings(
            dict(spec, text_encoder_subfolder=['text_encoder_3']), 48, True)
