"""DiTBackbone conditioned on class prompts computed by the model's own T5
(``ClassPrompts`` with ``class_embeddings=dict(class_names=...,
text_encoder=<pipeline>, text_encoder_subfolder=...)``), from a tiny random
T5 saved in an SD3-style pipeline folder here; nothing is downloaded.

The class tokens are checked against ``T5EncoderModel`` run directly (the
pooled form: the mean over each prompt's positions, the prompt encoded
alone without padding), and shown to be the tokens the transformer gets.
"""
import os
import os.path as osp

import pytest
import torch

from mmdiff.models.backbones import DiTBackbone
from mmdiff.models.diffusion import tiny_dit_configs
from mmdiff.testing import build_tiny_t5, demo_images

transformers = pytest.importorskip('transformers')

NAMES = ['cat', 'living_room', 'sky', 'wall']


@pytest.fixture(scope='module')
def t5_pipe(tmp_path_factory):
    """An SD3-style folder with the 32-wide T5 in text_encoder_3/ and
    tokenizer_3/, and a 24-wide one in a FLUX.1-style folder."""
    root = tmp_path_factory.mktemp('t5')
    sd3 = build_tiny_t5(str(root / 'sd3'), family='sd3')
    narrow = build_tiny_t5(str(root / 'flux'), dim=24, family='flux')
    return sd3, narrow


def _spec(folder, cache, **kwargs):
    """The spec a config writes (+ offline, quiet, a test cache)."""
    spec = dict(class_names=NAMES, text_encoder=folder,
                text_encoder_subfolder='text_encoder_3', templates='vpd',
                output='pooled', cache_dir=cache, local_files_only=True,
                progress=False)
    spec.update(kwargs)
    return spec


def _dit(family, conditioner, **kwargs):
    transformer, vae = tiny_dit_configs(family)
    torch.manual_seed(0)
    return DiTBackbone(family=family, transformer_cfg=transformer,
                       vae_cfg=vae, conditioner=conditioner,
                       **kwargs).eval()


def _direct_pooled(folder, prompts):
    tok = transformers.AutoTokenizer.from_pretrained(
        osp.join(folder, 'tokenizer_3'))
    model = transformers.T5EncoderModel.from_pretrained(
        osp.join(folder, 'text_encoder_3')).eval()
    with torch.no_grad():
        return torch.stack([
            model(input_ids=tok([p], return_tensors='pt').input_ids)
            .last_hidden_state[0].mean(0) for p in prompts])


@pytest.mark.parametrize('family', ['pixart', 'sd3'])
def test_t5_class_prompts_condition_the_dit(family, t5_pipe, tmp_path,
                                            monkeypatch):
    sd3, _ = t5_pipe
    cache = str(tmp_path / 'cache')
    cond = dict(type='ClassPrompts', class_embeddings=_spec(sd3, cache),
                text_adapter=False)
    model = _dit(family, cond, attn_blocks=(-1, ))
    ref = _direct_pooled(sd3, [f'a photo of a {n.replace("_", " ")}'
                               for n in NAMES])
    emb = model.conditioner.class_embeddings
    assert emb.shape == (4, model.text_dim) == (4, 32)
    torch.testing.assert_close(emb, ref, rtol=0, atol=1e-5)
    # the transformer gets these K tokens, one attention map channel each
    text, _ = model.condition(2)
    assert torch.equal(text, emb.expand(2, -1, -1))
    with torch.no_grad():
        outs = model(demo_images(2, 32))
    assert outs[0].shape == (2, model.transformer.inner_dim + 4, 2, 2)
    assert all(torch.isfinite(o).all() for o in outs)
    assert len([f for f in os.listdir(cache) if f.endswith('tensors')]) == 1
    # built again: read from the cache, the encoder is not loaded
    from mmdiff.models.text import encoder

    def no_load(*args, **kwargs):
        raise AssertionError('cache hit must not load the text encoder')

    monkeypatch.setattr(encoder, 'load_located', no_load)
    again = _dit(family, cond)
    assert torch.equal(again.conditioner.class_embeddings, emb)


def test_t5_tokens_and_registry_config(t5_pipe, tmp_path):
    """The config form (registry, mmdiff scope) with ``output='tokens'``:
    K x L tokens, their maps summed per class."""
    from mmengine.registry import DefaultScope

    from mmdiff.registry import MODELS
    sd3, _ = t5_pipe
    transformer, vae = tiny_dit_configs('pixart')
    cfg = dict(type='DiTBackbone', family='pixart',
               transformer_cfg=transformer, vae_cfg=vae,
               attn_blocks=(-1, ),
               conditioner=dict(type='ClassPrompts',
                                class_embeddings=_spec(
                                    sd3, str(tmp_path), max_length=6,
                                    output='tokens')))
    with DefaultScope.overwrite_default_scope('mmdiff'):
        model = MODELS.build(cfg).eval()
    assert model.conditioner.class_embeddings.shape == (4, 6, 32)
    assert model.out_channels == (24 + 4, )
    with torch.no_grad():
        text, _ = model.condition(1)
        outs = model(demo_images(1, 32))
    assert text.shape == (1, 4 * 6, 32)
    assert outs[0].shape == (1, 28, 2, 2)


def test_width_mismatch_names_the_fix(t5_pipe, tmp_path):
    _, narrow = t5_pipe
    cond = dict(type='ClassPrompts', class_embeddings=_spec(
        narrow, str(tmp_path), text_encoder_subfolder='text_encoder_2'))
    with pytest.raises(ValueError, match=r"have dim 24 but the model's text "
                       r'width is 32 .*DiTBackbone.*text_encoder_subfolder='
                       r"'text_encoder_3'"):
        _dit('sd3', cond)


def test_unknown_text_encoder_named(tmp_path):
    pipe = tmp_path / 'pipe' / 'text_encoder_3'
    pipe.mkdir(parents=True)
    (pipe / 'config.json').write_text(
        '{"architectures": ["UMT5EncoderModel"], "model_type": "umt5"}')
    cond = dict(type='ClassPrompts',
                class_embeddings=_spec(str(tmp_path / 'pipe'),
                                       str(tmp_path / 'c')))
    with pytest.raises(ValueError, match='UMT5EncoderModel.*not a text '
                       'encoder mmdiff loads'):
        _dit('pixart', cond)
    bad = dict(cond, class_embeddings=dict(
        cond['class_embeddings'], text_encoder_subfolfer='x'))
    with pytest.raises(ValueError, match=r"Unknown keys \['text_encoder_"
                       r"subfolfer'\].*'text_encoder_subfolder'"):
        _dit('pixart', bad)
