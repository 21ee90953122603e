"""The user's path with captions: ``tools/train.py`` on the SD1.5 caption
config (its data set, pipeline, packer and hooks), shrunk to a tiny U-Net
and a tiny CLIP on 4 captioned images (metadata.jsonl + one .txt), writes a
diffusers folder whose text_encoder/ and tokenizer/ load back. (Resume: the
caption dropout is drawn from the global torch RNG, seeded and checked in
test_caption_conditioning.py; test_pretrain.py shows a resumed run restores
that RNG and repeats the losses.)"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
LEAF = osp.join(
    REPO, 'configs', 'pretrain',
    'diffusion-pretrain_sd15-caption_8xb4-15k_my-images-512x512.py')
DS = 'train_dataloader.dataset'
TINY = [
    'train_cfg.max_iters=4', 'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    f'{DS}.pipeline.1.scale=64', f'{DS}.pipeline.2.crop_size=(64,64)',
    'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1',
    'randomness.deterministic=True', 'optim_wrapper.optimizer.lr=1e-3',
    'param_scheduler=[]', 'model.grad_checkpointing=False',
    'model.caption_dropout=0.5', 'model.local_files_only=True',
    'custom_hooks.1.num_samples=2', 'custom_hooks.1.sample_steps=2'
]
CAPTIONS = {'0.png': 'a red square', '1.png': 'a blue disc',
            '2.png': 'stripes', '3.png': 'noise from a sidecar'}


@pytest.fixture(scope='module')
def trained(tmp_path_factory, run_tool):
    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    from mmdiff.testing.clip import build_test_clip
    cwd = tmp_path_factory.mktemp('caption')
    clip = build_test_clip(str(cwd / 'clip'))
    data = cwd / 'data' / 'my_images'
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(sorted(CAPTIONS)):
        cv2.imwrite(str(data / name),
                    rng.integers(0, 255, (72 + 8 * i, 80, 3), np.uint8))
    with open(data / 'metadata.jsonl', 'w') as f:
        for name in ('0.png', '1.png', '2.png'):
            f.write(json.dumps(dict(file_name=name,
                                    text=CAPTIONS[name])) + '\n')
    (data / '3.txt').write_text(CAPTIONS['3.png'])
    cfg = cwd / 'tiny_caption.py'
    cfg.write_text(
        f'_base_ = [{LEAF!r}]\n'
        f'model = dict(pretrained=None, unet_cfg={tiny_unet_cfg()!r}, '
        f'vae_cfg={tiny_vae_cfg()!r}, text_encoder={clip!r})\n')
    work = cwd / 'work_dirs' / 'cap'
    run_tool('tools/train.py', str(cfg), '--work-dir', str(work),
             '--cfg-options', *TINY, cwd=str(cwd))
    return cwd, cfg, work, clip


def test_caption_run_writes_a_loadable_folder(trained, logged_iters):
    from transformers import CLIPTextModel, CLIPTokenizer

    from mmdiff.models.text import load_text_encoder
    cwd, cfg, work, clip = trained
    folder = work / 'diffusers'
    assert sorted(os.listdir(folder)) == [
        'mmdiff_pretrain.json', 'scheduler', 'text_encoder', 'tokenizer',
        'unet', 'vae']
    info = json.loads((folder / 'mmdiff_pretrain.json').read_text())
    assert info['iter'] == 4 and info['ema'] is True
    assert info['conditioning'] == 'caption'
    assert info['caption_dropout'] == 0.5 and info['text_encoder'] == clip
    # the first 2 samples of the data set (sorted files) prompt the grid
    assert info['sample_captions'] == [CAPTIONS['0.png'], CAPTIONS['1.png']]
    assert sorted(os.listdir(work / 'samples')) == ['iter_2.png',
                                                    'iter_4.png']
    # text encoder + tokenizer load back (mmdiff's loader and transformers)
    # and equal the source CLIP
    enc, tok = load_text_encoder(str(folder), local_files_only=True)
    ref = CLIPTextModel.from_pretrained(clip)
    for k, v in ref.state_dict().items():
        assert torch.equal(enc.state_dict()[k], v), k
    ids = CLIPTokenizer.from_pretrained(clip)(['a red square']).input_ids
    assert tok(['a red square']).input_ids == ids
    losses = logged_iters(str(work))
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(np.isfinite(r['loss']) for r in losses.values())

