"""DiffusionPretrainer(conditioning='caption'): a frozen CLIP text encoder
as diffusers' train_text_to_image.py uses it.

References come from transformers called directly, the way that script
does: ``tokenizer(captions, max_length=tokenizer.model_max_length,
padding='max_length', truncation=True)`` then ``text_encoder(ids,
return_dict=False)[0]``; caption dropout replaces a caption by '' (its
``proportion_empty_prompts``). Tiny CLIP (mmdiff.testing) and U-Net, built
here.
"""
import json

import pytest
import torch
from mmengine.structures import BaseDataElement

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.models.pretrainers import DiffusionPretrainer
from mmdiff.models.pretrainers.export import export_diffusers

pytestmark = pytest.mark.usefixtures('one_thread')  # tests/conftest.py

CAPTIONS = ['a photo of a cat', 'a red square on grey', '',
            'a very long caption ' * 20]  # '' (empty prompt), truncated


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    """The tests' tiny CLIP, its tokenizer saved with SD's
    model_max_length (77), as in SD's tokenizer/ folder."""
    from transformers import CLIPTokenizer

    from mmdiff.testing.clip import build_test_clip
    folder = str(tmp_path_factory.mktemp('clip') / 'tiny-clip')
    build_test_clip(folder)
    CLIPTokenizer.from_pretrained(folder, model_max_length=77)\
        .save_pretrained(folder)
    return folder


def make(clip_dir, **kwargs) -> DiffusionPretrainer:
    torch.manual_seed(0)
    kwargs.setdefault('unet_cfg', tiny_unet_cfg())
    kwargs.setdefault('vae_cfg', tiny_vae_cfg())
    kwargs.setdefault('text_encoder', clip_dir)
    model = DiffusionPretrainer(conditioning='caption',
                                local_files_only=True, **kwargs)
    model.init_weights()
    return model


def reference_states(folder, captions, subfolder=''):
    from transformers import CLIPTextModel, CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(
        folder, subfolder='tokenizer' if subfolder else '')
    enc = CLIPTextModel.from_pretrained(folder, subfolder=subfolder).eval()
    ids = tok(list(captions), max_length=tok.model_max_length,
              padding='max_length', truncation=True,
              return_tensors='pt').input_ids
    with torch.no_grad():
        return enc(ids, return_dict=False)[0]


def samples(captions):
    return [BaseDataElement(metainfo=dict(caption=c)) for c in captions]


def images(n: int = 2, size: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 16, size // 16, generator=g)
    return torch.nn.functional.interpolate(low, size=size,
                                           mode='bilinear') * 2 - 1


def test_embeddings_are_the_text_encoders_last_hidden_state(clip_dir):
    model = make(clip_dir)
    want = reference_states(clip_dir, CAPTIONS)
    assert want.shape == (4, 77, 32)
    got = model.condition(4, captions=CAPTIONS)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # the loss feeds exactly these states to the U-Net
    seen = []
    handle = model.unet.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(kw['encoder_hidden_states']),
        with_kwargs=True)
    model.loss(images(4), samples(CAPTIONS))
    handle.remove()
    torch.testing.assert_close(seen[0], want, rtol=0, atol=0)
    # frozen: no gradient, eval mode even after train()
    model.train()
    assert not model.text_encoder.model.training
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_caption_dropout_fraction_and_empty_prompt(clip_dir):
    model = make(clip_dir, caption_dropout=0.3)
    n = 4000
    torch.manual_seed(7)
    kept = model._captions(samples(['x'] * n))
    dropped = sum(c == '' for c in kept) / n
    # binomial(4000, 0.3): sd 0.0072; 5 sd
    assert abs(dropped - 0.3) < 0.036, dropped
    assert set(kept) == {'', 'x'}
    torch.manual_seed(7)  # the global RNG decides: a resume redraws the same
    assert model._captions(samples(['x'] * n)) == kept
    # dropout 1: every caption is the empty prompt's embedding
    all_dropped = make(clip_dir, caption_dropout=1.0)
    empty = reference_states(clip_dir, [''] * 2)
    seen = []
    all_dropped.unet.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(kw['encoder_hidden_states']),
        with_kwargs=True)
    all_dropped.loss(images(2), samples(CAPTIONS[:2]))
    torch.testing.assert_close(seen[0], empty, rtol=0, atol=0)
    assert not torch.equal(empty[0], reference_states(clip_dir,
                                                      CAPTIONS[:1])[0])


def test_loss_decreases_with_captions(clip_dir):
    model = make(clip_dir, caption_dropout=0.1)
    x = images(4)
    batch = samples(['a dark scene', 'a bright scene'] * 2)
    text_before = {k: v.clone() for k, v in
                   model.text_encoder.state_dict().items()}
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=2e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(40):
        loss = model.loss(x, batch)
        optim.zero_grad()
        loss['loss'].backward()
        optim.step()
        losses.append(loss['mse'].item())
    assert sum(losses[-8:]) < 0.7 * sum(losses[:8]), losses
    for k, v in model.text_encoder.state_dict().items():
        assert torch.equal(v, text_before[k]), k
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert all(p.grad is None for p in model.vae.parameters())


def test_errors_name_the_fix(clip_dir, tmp_path):
    with pytest.raises(ValueError, match=r'32-wide hidden states.*'
                       r'cross-attends to 16.*cross_attention_dim=32'):
        make(clip_dir, unet_cfg=dict(tiny_unet_cfg(),
                                     cross_attention_dim=16))
    with pytest.raises(ValueError, match=r'needs a CLIP text encoder.*'
                       r'Fix: pass text_encoder='):
        make(clip_dir, text_encoder=None)
    with pytest.raises(OSError, match='Cannot find a CLIP text encoder'):
        make(clip_dir, text_encoder=str(tmp_path))
    model = make(clip_dir)
    with pytest.raises(ValueError, match=r"'caption' to the packer's "
                       r'meta_keys'):
        model.loss(images(2), [BaseDataElement(metainfo=dict())] * 2)
    with pytest.raises(ValueError, match=r'caption_dropout must be in'):
        make(clip_dir, caption_dropout=1.5)
    with pytest.raises(ValueError, match="needs conditioning='caption'"):
        DiffusionPretrainer(unet_cfg=tiny_unet_cfg(),
                            vae_cfg=tiny_vae_cfg(), caption_dropout=0.1)
    with pytest.raises(ValueError, match="conditioning='caption' only"):
        DiffusionPretrainer(unet_cfg=tiny_unet_cfg(),
                            vae_cfg=tiny_vae_cfg(), text_encoder=clip_dir)


def test_export_writes_a_stable_diffusion_folder(clip_dir, tmp_path):
    from mmdiff.models.text import compute_class_embeddings, \
        load_text_encoder
    model = make(clip_dir, caption_dropout=0.1)
    out = export_diffusers(model, str(tmp_path / 'sd'),
                           meta=dict(sample_captions=CAPTIONS[:2]))
    assert sorted(p.name for p in (tmp_path / 'sd').iterdir()) == [
        'mmdiff_pretrain.json', 'scheduler', 'text_encoder', 'tokenizer',
        'unet', 'vae']
    info = json.loads((tmp_path / 'sd' / 'mmdiff_pretrain.json').read_text())
    assert info['conditioning'] == 'caption'
    assert info['max_length'] == 77 and info['caption_dropout'] == 0.1
    assert info['sample_captions'] == CAPTIONS[:2]
    # transformers reads the folder as SD's layout: the same states
    torch.testing.assert_close(
        reference_states(out, CAPTIONS, subfolder='text_encoder'),
        reference_states(clip_dir, CAPTIONS), rtol=0, atol=0)
    # the backbones' loader (class embeddings, CaptionVPD) finds it
    enc, tok = load_text_encoder(out, local_files_only=True)
    assert tok.model_max_length == 77
    spec = dict(class_names=['cat', 'dog'], templates=['a photo of a {}.'],
                progress=False)
    torch.testing.assert_close(
        compute_class_embeddings(text_encoder=out, **spec),
        compute_class_embeddings(text_encoder=clip_dir, **spec))
    backbone = DiffusionBackbone(pretrained=out, local_files_only=True)
    backbone.init_weights()
    for k, v in model.unet.state_dict().items():
        assert torch.equal(backbone.unet.state_dict()[k], v), k
    # pretrained=<that folder>: the caption encoder comes from it
    again = DiffusionPretrainer(pretrained=out, conditioning='caption',
                                local_files_only=True)
    again.init_weights()
    torch.testing.assert_close(again.condition(4, captions=CAPTIONS),
                               model.condition(4, captions=CAPTIONS),
                               rtol=0, atol=0)
    # samples prompted by captions differ from the empty prompt's
    a = model.sample(2, (8, 8), steps=2, captions=CAPTIONS[:2])
    b = model.sample(2, (8, 8), steps=2)
    assert a.shape == (2, 3, 64, 64) and not torch.equal(a, b)
