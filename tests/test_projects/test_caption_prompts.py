"""projects/CaptionPrompts: per-image caption prompts (TADP-style)."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmdiff.models.diffusion import tiny_sd_configs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROJECT = osp.join(ROOT, 'projects', 'CaptionPrompts')
DEMO = osp.join(PROJECT, 'configs', 'caption-prompts_vpd_tiny-fpn_demo-seg.py')
TOOLS = osp.join(PROJECT, 'tools')


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    from mmdiff.testing import build_tiny_clip
    return build_tiny_clip(str(tmp_path_factory.mktemp('clip') / 'clip'))


def _build(tiny_clip, captions, **kwargs):
    from projects.CaptionPrompts.caption_prompts import CaptionVPD
    unet, vae = tiny_sd_configs()
    torch.manual_seed(0)
    return CaptionVPD(unet_cfg=unet, vae_cfg=vae, captions=captions,
                      text_encoder=tiny_clip, max_length=8, **kwargs)


def _images(batch=2):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, 64, 64, generator=gen) * 2 - 1


def test_captions_condition_tokens_and_maps(tiny_clip):
    import transformers
    caps = {'training/a.jpg': 'a photo of a cat.', 'b.jpg': 'a dog.'}
    model = _build(tiny_clip, caps, caption_template='a dark night photo of {}')
    assert model.num_tokens == 8
    assert model.out_channels == (32, 64 + 8, 64 + 8, 64)
    metas = [dict(img_path='/data/training/a.jpg'),
             dict(img_path='/x/validation/b.jpg')]
    cond = model.condition(2, metainfo=metas)
    # token-level features of the modified captions, from the encoder
    tok = transformers.CLIPTokenizer.from_pretrained(tiny_clip)
    enc = transformers.CLIPTextModel.from_pretrained(tiny_clip).eval()
    ids = tok(['a dark night photo of a photo of a cat.',
               'a dark night photo of a dog.'], padding='max_length',
              max_length=8, truncation=True, return_tensors='pt').input_ids
    with torch.no_grad():
        want = enc(input_ids=ids).last_hidden_state
    want = model.conditioner.text_adapter(want)
    assert torch.allclose(cond, want, atol=1e-5)
    outs = model(_images(), metainfo=metas)
    assert [o.shape[1] for o in outs] == list(model.out_channels)
    # the text encoder is frozen and not part of the state dict
    assert not any('text_model' in k for k in model.state_dict())


def test_missing_captions(tiny_clip, tmp_path):
    model = _build(tiny_clip, {'a.jpg': 'a cat.'})
    with pytest.raises(KeyError, match='missing_caption'):
        model.condition(1, metainfo=[dict(img_path='b.jpg')])
    lenient = _build(tiny_clip, {}, missing_caption='a photo.')
    assert lenient.condition(2).shape == (2, 8, 32)  # no keys: the default
    with pytest.raises(FileNotFoundError, match='make_class_captions'):
        _build(tiny_clip, str(tmp_path / 'none.json')).conditioner.caption_of(
            'a.jpg')
    with pytest.raises(TypeError, match='class_embeddings'):
        _build(tiny_clip, {}, class_embeddings=dict(num_classes=2))


def test_text_encoder_is_checked(tmp_path):
    """CaptionVPD loads its encoder through mmdiff's checked loader: a folder
    without a CLIP model is one error naming what was looked for."""
    (tmp_path / 'empty').mkdir()
    model = _build(str(tmp_path / 'empty'), {}, missing_caption='a photo.',
                   local_files_only=True)
    for src in (tmp_path / 'empty', tmp_path / 'none', './no-such-clip'):
        model.conditioner.text_encoder_src = str(src)
        with pytest.raises(OSError, match='Cannot find a CLIP text encoder'
                           '.*Stable Diffusion folder'):
            model.condition(1)


def test_class_caption_text():
    sys.path.insert(0, TOOLS)
    try:
        from make_class_captions import class_caption
    finally:
        sys.path.remove(TOOLS)
    assert class_caption([]) == 'a photo.'
    assert class_caption(['cat']) == 'a photo of a cat.'
    assert class_caption(['cat', 'dog', 'traffic_light']) == (
        'a photo of a cat, a dog and a traffic light.')


def test_demo_tools_train_and_test(train_test, tmp_path):
    """The README's three commands, in a fresh cwd, then tools/test.py."""
    cwd = str(tmp_path)
    env = dict(__import__('os').environ, PYTHONWARNINGS='ignore')
    for cmd in ([osp.join(TOOLS, 'make_demo_text_encoder.py'),
                 'data/demo/tiny_clip'],
                [osp.join(TOOLS, 'make_class_captions.py'), DEMO, '--out',
                 'data/demo/seg/captions.json', '--cfg-options'] + [
                     f'{split}_dataloader.dataset.{key}={num}'
                     for split in ('train', 'val')
                     for key, num in (('num_train', 8), ('num_val', 4))]):
        proc = subprocess.run([sys.executable, *cmd], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(cwd, 'data/demo/seg/captions.json')) as f:
        captions = json.load(f)
    assert len(captions) == 8 + 4  # train + val, keys unique per split
    assert all(c.startswith('a photo') for c in captions.values())
    log, metrics = train_test(DEMO, cwd)
    assert 'Iter(train) [4/4]' in log
    assert {'mIoU', 'aAcc'} <= set(metrics)
