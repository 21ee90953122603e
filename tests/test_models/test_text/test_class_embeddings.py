"""Class embeddings from a tiny CLIP text model and tokenizer built here.

Nothing is downloaded: the tokenizer is a byte-level BPE (CLIP's byte
alphabet, with and without ``</w>``, a few merges, the two special tokens)
written as vocab.json + merges.txt, and the model a 2-layer
``CLIPTextModel``; both go through ``save_pretrained``/``from_pretrained``.
"""
import json
import os
import os.path as osp
import shutil

import pytest
import torch

from mmdiff.models.text import (CLASS_NAME_SETS, IMAGENET_TEMPLATES,
                                append_mean_row, compute_class_embeddings,
                                default_cache_dir, encoder,
                                get_or_build_class_embeddings,
                                load_class_embeddings, resolve_class_names,
                                resolve_templates, save_class_embeddings)
from mmdiff.testing.clip import build_test_clip as build_tiny_clip

transformers = pytest.importorskip('transformers')

NAMES = ['cat', 'living_room', 'traffic light']
TEMPLATES = ['a photo of a {}.', 'a bad photo of the {}.', 'itap of my {}.']


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    return build_tiny_clip(str(tmp_path_factory.mktemp('m') / 'clip'))


@pytest.fixture(scope='module')
def sd_dir(tmp_path_factory, clip_dir):
    """A Stable Diffusion-style folder holding the same text encoder."""
    root = tmp_path_factory.mktemp('sd')
    shutil.copytree(clip_dir, root / 'text_encoder')
    shutil.copytree(clip_dir, root / 'tokenizer')
    (root / 'model_index.json').write_text('{}')
    return str(root)


def _encode_manually(folder, prompts, max_length=77):
    tok = transformers.CLIPTokenizer.from_pretrained(folder)
    model = transformers.CLIPTextModel.from_pretrained(folder).eval()
    ids = tok(prompts, padding='max_length', max_length=max_length,
              truncation=True, return_tensors='pt').input_ids
    with torch.no_grad():
        out = model(input_ids=ids)
    return out.pooler_output, out.last_hidden_state


# ---------------------------------------------------------------- names
@pytest.mark.parametrize('name,num', [('ade20k', 150), ('coco', 80),
                                      ('nyu_scenes', 27), ('cityscapes', 19),
                                      ('voc', 21), ('coco_panoptic', 133)])
def test_class_names_from_host_metainfo(name, num):
    names = resolve_class_names(name)
    assert len(names) == num
    module, cls = CLASS_NAME_SETS[name]
    host = __import__(module, fromlist=[cls])
    # Stripped: mmseg's ADE20K list has 'bed ' (CLIP's tokenizer drops the
    # space anyway).
    assert names == [n.strip() for n in getattr(host, cls).METAINFO['classes']]


def test_class_names_list_and_file(tmp_path):
    assert resolve_class_names(['a', ' b ']) == ['a', 'b']
    file = tmp_path / 'names.txt'
    file.write_text('wall\n\nliving room\n')
    assert resolve_class_names(str(file)) == ['wall', 'living room']


def test_class_names_errors():
    with pytest.raises(ValueError, match='ade20k.*coco.*nyu_scenes'):
        resolve_class_names('ade21k')
    with pytest.raises(ValueError, match='non-empty'):
        resolve_class_names([])


def test_templates(tmp_path):
    assert resolve_templates('vpd') == ['a photo of a {}']
    assert len(IMAGENET_TEMPLATES) == 80 == len(set(IMAGENET_TEMPLATES))
    assert resolve_templates('imagenet80') == IMAGENET_TEMPLATES
    file = tmp_path / 't.txt'
    file.write_text('a {}\nthe {}\n')
    assert resolve_templates(str(file)) == ['a {}', 'the {}']
    with pytest.raises(ValueError, match='exactly one'):
        resolve_templates(['no placeholder'])
    with pytest.raises(ValueError, match='imagenet80'):
        resolve_templates('imagenet81')


# ---------------------------------------------------------------- compute
def test_deterministic_and_shapes(clip_dir):
    kw = dict(templates=TEMPLATES, local_files_only=True, progress=False)
    a = compute_class_embeddings(NAMES, clip_dir, **kw)
    b = compute_class_embeddings(NAMES, clip_dir, **kw)
    assert a.shape == (3, 32) and a.dtype == torch.float32
    assert torch.equal(a, b)
    tokens = compute_class_embeddings(NAMES, clip_dir, output='tokens',
                                      max_length=16, **kw)
    assert tokens.shape == (3, 16, 32)


def test_template_average_matches_manual(clip_dir):
    emb = compute_class_embeddings(NAMES, clip_dir, TEMPLATES,
                                   local_files_only=True, progress=False,
                                   batch_size=4)  # 1 class per batch
    tok = compute_class_embeddings(NAMES, clip_dir, TEMPLATES,
                                   output='tokens', max_length=12,
                                   local_files_only=True, progress=False)
    for i, name in enumerate(NAMES):
        prompts = [t.format(name.replace('_', ' ')) for t in TEMPLATES]
        pooled, _ = _encode_manually(clip_dir, prompts)
        torch.testing.assert_close(emb[i], pooled.mean(0), rtol=0, atol=1e-6)
        _, hidden = _encode_manually(clip_dir, prompts, max_length=12)
        torch.testing.assert_close(tok[i], hidden.mean(0), rtol=0, atol=1e-6)


def test_pooled_independent_of_padding_length(clip_dir):
    kw = dict(local_files_only=True, progress=False)
    short = compute_class_embeddings(NAMES, clip_dir, max_length=20, **kw)
    full = compute_class_embeddings(NAMES, clip_dir, max_length=77, **kw)
    torch.testing.assert_close(short, full, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='max_length'):
        compute_class_embeddings(NAMES, clip_dir, max_length=78, **kw)


def test_sd_folder_normalize_and_loaded_pair(clip_dir, sd_dir):
    kw = dict(local_files_only=True, progress=False)
    ref = compute_class_embeddings(NAMES, clip_dir, **kw)
    torch.testing.assert_close(
        compute_class_embeddings(NAMES, sd_dir, **kw), ref, rtol=0, atol=0)
    pair = (transformers.CLIPTextModel.from_pretrained(clip_dir),
            transformers.CLIPTokenizer.from_pretrained(clip_dir))
    torch.testing.assert_close(
        compute_class_embeddings(NAMES, pair, **kw), ref, rtol=0, atol=0)
    unit = compute_class_embeddings(NAMES, clip_dir, TEMPLATES,
                                    normalize=True, **kw)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(3))


def test_progress_bar(clip_dir, capsys):
    compute_class_embeddings(NAMES, clip_dir, local_files_only=True)
    assert '3/3' in capsys.readouterr().out


def test_missing_model_errors(tmp_path):
    with pytest.raises(OSError, match='Looked for.*text_encoder/') as e:
        compute_class_embeddings(NAMES, str(tmp_path / 'nope'),
                                 local_files_only=True)
    assert 'hf download' in str(e.value)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(OSError, match='neither config.json'):
        compute_class_embeddings(NAMES, str(tmp_path / 'empty'))
    with pytest.raises(OSError, match='local_files_only=True'):
        compute_class_embeddings(NAMES, 'mmdiff-test/not-a-model',
                                 local_files_only=True)
    with pytest.raises(ValueError, match='output'):
        compute_class_embeddings(NAMES, str(tmp_path), output='mean')


# ---------------------------------------------------------------- files
@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_save_load_round_trip(tmp_path, suffix):
    emb = torch.randn(4, 8)
    meta = dict(model='m', templates=['a {}'], classes=list('abcd'),
                output='pooled', max_length=77)
    path = str(tmp_path / 'sub' / f'e{suffix}')
    assert save_class_embeddings(path, emb, meta) == path
    loaded, loaded_meta = load_class_embeddings(path)
    assert torch.equal(loaded, emb) and loaded_meta == meta
    with open(path + '.json') as f:
        assert json.load(f) == meta
    assert sorted(os.listdir(tmp_path / 'sub')) == [
        f'e{suffix}', f'e{suffix}.json']  # no temp files left
    if suffix == '.pth':  # plain types only: the strict loader takes it
        obj = torch.load(path, weights_only=True)
        assert set(obj) == {'class_embeddings', 'meta'}


def test_load_released_layouts_and_errors(tmp_path):
    emb = torch.randn(27, 8)
    torch.save(emb, tmp_path / 'bare.pth')  # VPD's released files
    out, meta = load_class_embeddings(tmp_path / 'bare.pth')
    assert torch.equal(out, emb) and meta == {}
    torch.save({'embeddings': emb}, tmp_path / 'd.pth')
    assert torch.equal(load_class_embeddings(tmp_path / 'd.pth')[0], emb)
    with pytest.raises(FileNotFoundError, match='build_class_embeddings'):
        load_class_embeddings(tmp_path / 'missing.pth')
    torch.save({'state_dict': {}}, tmp_path / 'wrong.pth')
    with pytest.raises(ValueError, match="no 'class_embeddings'"):
        load_class_embeddings(tmp_path / 'wrong.pth')
    torch.save(torch.arange(3), tmp_path / 'int.pth')
    with pytest.raises(ValueError, match='float tensor'):
        load_class_embeddings(tmp_path / 'int.pth')
    torch.save({'class_embeddings': emb, 'obj': torch.nn.Linear(1, 1)},
               tmp_path / 'pickle.pth')
    with pytest.raises(ValueError, match='weights-only'):
        load_class_embeddings(tmp_path / 'pickle.pth')
    with pytest.raises(ValueError, match='suffix'):
        save_class_embeddings(tmp_path / 'x.npy', emb, {})


def test_mean_row():
    emb = torch.randn(27, 8)
    out = append_mean_row(emb)
    assert out.shape == (28, 8)
    assert torch.equal(out[:27], emb)
    torch.testing.assert_close(out[27], emb.mean(0))


# ---------------------------------------------------------------- cache
def test_cache_hit_does_not_load_model(clip_dir, tmp_path, monkeypatch):
    cache = str(tmp_path / 'cache')
    kw = dict(templates=TEMPLATES, cache_dir=cache, local_files_only=True,
              progress=False)
    first = get_or_build_class_embeddings(NAMES, clip_dir, **kw)
    files = sorted(os.listdir(cache))
    assert len(files) == 2 and files[0].endswith('.safetensors')
    _, meta = load_class_embeddings(osp.join(cache, files[0]))
    assert meta['classes'] == NAMES and meta['templates'] == TEMPLATES

    def no_load(*args, **kwargs):
        raise AssertionError('cache hit must not load the text encoder')

    monkeypatch.setattr(encoder, 'load_located', no_load)
    again = get_or_build_class_embeddings(NAMES, clip_dir, **kw)
    assert torch.equal(first, again)
    with_mean = get_or_build_class_embeddings(NAMES, clip_dir, mean_row=True,
                                              **kw)
    assert with_mean.shape == (4, 32)
    # Anything in the key changed -> a build (which would load the model).
    for change in (dict(output='tokens'), dict(max_length=20),
                   dict(templates=TEMPLATES[:2]), dict(normalize=True)):
        with pytest.raises(AssertionError, match='must not load'):
            get_or_build_class_embeddings(NAMES, clip_dir,
                                          **{**kw, **change})


def test_cache_key_follows_weights_and_env(clip_dir, tmp_path, monkeypatch):
    monkeypatch.setenv('MMDIFF_CACHE', str(tmp_path / 'root'))
    assert default_cache_dir() == str(tmp_path / 'root' /
                                      'class_embeddings')
    other = build_tiny_clip(str(tmp_path / 'clip2'), seed=1)
    kw = dict(local_files_only=True, progress=False)
    a = get_or_build_class_embeddings(NAMES, clip_dir, **kw)
    b = get_or_build_class_embeddings(NAMES, other, **kw)
    assert not torch.equal(a, b)
    assert len(os.listdir(tmp_path / 'root' / 'class_embeddings')) == 4


def _fake_hub_repo(cache, repo_id, files_from, sub=None, commit='c0ffee' * 6
                   + 'c0ff'):
    """Lay out ``repo_id`` in a hub cache as huggingface_hub writes it."""
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    (repo / 'refs').mkdir(parents=True)
    (repo / 'refs' / 'main').write_text(commit)
    snap = repo / 'snapshots' / commit
    if sub is None:
        shutil.copytree(files_from, snap)
    else:
        shutil.copytree(files_from, snap / 'text_encoder')
        shutil.copytree(files_from, snap / 'tokenizer')
    return commit


def test_hub_id_offline_from_cache(clip_dir, tmp_path, monkeypatch):
    """A hub id resolves in the local hub cache, pinned to its commit."""
    from huggingface_hub import constants
    cache = tmp_path / 'hub'
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(cache))
    commit = _fake_hub_repo(cache, 'mmdiff-test/tiny-clip', clip_dir)
    _fake_hub_repo(cache, 'mmdiff-test/tiny-sd', clip_dir, sub=True)
    kw = dict(local_files_only=True, progress=False)
    ref = compute_class_embeddings(NAMES, clip_dir, **kw)
    emb, meta = compute_class_embeddings(NAMES, 'mmdiff-test/tiny-clip',
                                         return_metadata=True, **kw)
    assert torch.equal(emb, ref)
    assert meta['model_identity'] == f'hub:mmdiff-test/tiny-clip@{commit}/'
    sd = compute_class_embeddings(NAMES, 'mmdiff-test/tiny-sd', **kw)
    assert torch.equal(sd, ref)
    cached = get_or_build_class_embeddings(
        NAMES, 'mmdiff-test/tiny-clip', cache_dir=str(tmp_path / 'c'), **kw)
    assert torch.equal(cached, ref)


def test_full_clip_model_folder(clip_dir, tmp_path):
    """A CLIPModel folder (the openai/clip-vit-* layout): its text tower."""
    from transformers.utils import logging as hf_logging
    text_cfg = transformers.CLIPTextConfig.from_pretrained(clip_dir)
    vision_cfg = transformers.CLIPVisionConfig(
        hidden_size=16, intermediate_size=20, num_hidden_layers=1,
        num_attention_heads=2, image_size=8, patch_size=4)
    cfg = transformers.CLIPConfig(text_config=text_cfg.to_dict(),
                                  vision_config=vision_cfg.to_dict(),
                                  projection_dim=8)
    torch.manual_seed(1)
    full = transformers.CLIPModel(cfg).eval()
    folder = tmp_path / 'full'
    full.save_pretrained(folder)
    for name in os.listdir(clip_dir):
        if name.startswith('tokenizer'):
            shutil.copy(osp.join(clip_dir, name), folder)
    verbosity = hf_logging.get_verbosity()
    emb = compute_class_embeddings(['cat'], str(folder), progress=False,
                                   local_files_only=True)
    assert hf_logging.get_verbosity() == verbosity
    ids = transformers.CLIPTokenizer.from_pretrained(folder)(
        ['a photo of a cat'], padding='max_length', max_length=77,
        return_tensors='pt').input_ids
    with torch.no_grad():
        ref = full.text_model(input_ids=ids).pooler_output
    torch.testing.assert_close(emb, ref, rtol=0, atol=0)
