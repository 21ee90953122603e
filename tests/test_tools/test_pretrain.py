"""The user's path: ``tools/train.py configs/pretrain/<demo>.py`` writes a
diffusers folder (EMA U-Net + VAE) and sample grids; ``--resume`` from its
mid-run checkpoint reproduces the uninterrupted run; the seg demo loads the
folder with ``model.backbone.pretrained=FOLDER``.

Everything is shrunk by ``--cfg-options`` (8 scenes of 64 px, batch 2,
4 iterations, the demos' VAE a 2-step stand-in).
"""
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from safetensors.torch import load_file

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PRETRAIN = osp.join(REPO, 'configs', 'pretrain',
                    'diffusion-pretrain_tiny_demo-unlabelled.py')
SEG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
DS = 'train_dataloader.dataset'
TINY = [
    'train_cfg.max_iters=4', 'train_dataloader.batch_size=2',
    f'{DS}.num_train=8', f'{DS}.size=64', f'{DS}.pipeline.1.scale=64',
    f'{DS}.pipeline.2.crop_size=(64,64)',
    'default_hooks.checkpoint.interval=2',
    'default_hooks.checkpoint.max_keep_ckpts=3',
    'default_hooks.logger.interval=1', 'randomness.deterministic=True',
    'custom_hooks.0.steps=2', 'custom_hooks.0.size=64',  # demo VAE
    'custom_hooks.2.num_samples=2', 'custom_hooks.2.sample_steps=2'
]


@pytest.fixture(scope='module')
def pretrained(tmp_path_factory, run_tool):
    cwd = str(tmp_path_factory.mktemp('pretrain'))
    work = osp.join(cwd, 'work_dirs', 'pre')
    run_tool('tools/train.py', PRETRAIN, '--work-dir', work,
             '--cfg-options', *TINY, cwd=cwd)
    return cwd, work


def test_pretrain_writes_folder_and_samples(pretrained, logged_iters):
    cwd, work = pretrained
    folder = osp.join(work, 'diffusers')
    assert sorted(os.listdir(folder)) == [
        'mmdiff_pretrain.json', 'scheduler', 'unet', 'vae']
    info = json.load(open(osp.join(folder, 'mmdiff_pretrain.json')))
    assert info['iter'] == 4 and info['ema'] is True
    assert sorted(os.listdir(osp.join(work, 'samples'))) == [
        'iter_2.png', 'iter_4.png']
    # the EMA weights (what EMAHook put in the checkpoint) were exported
    ckpt = torch.load(osp.join(work, 'iter_4.pth'), weights_only=False)
    unet = load_file(osp.join(folder, 'unet',
                              'diffusion_pytorch_model.safetensors'))
    for key, value in unet.items():
        assert torch.equal(ckpt['state_dict']['unet.' + key], value)
    raw = ckpt['ema_state_dict']  # EMAHook keeps the raw weights here
    key = next(k for k in unet if k.endswith('conv_in.weight'))
    assert not torch.equal(raw['module.unet.' + key], unet[key])
    losses = logged_iters(work)
    assert sorted(losses) == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in
               losses.values())


def test_resume_mid_pretraining_reproduces_the_run(pretrained, run_tool,
                                                   logged_iters):
    cwd, work = pretrained
    resumed = osp.join(cwd, 'work_dirs', 'resumed')
    os.makedirs(resumed)
    shutil.copy(osp.join(work, 'iter_2.pth'), resumed)
    run_tool('tools/train.py', PRETRAIN, '--work-dir', resumed, '--resume',
             osp.join(resumed, 'iter_2.pth'), '--cfg-options', *TINY,
             cwd=cwd)
    a, b = logged_iters(work), logged_iters(resumed)
    assert sorted(b) == [3, 4]
    for it in (3, 4):
        assert b[it]['loss'] == pytest.approx(a[it]['loss'], rel=1e-6)
        assert b[it]['lr'] == pytest.approx(a[it]['lr'], rel=1e-9)
    ua = load_file(osp.join(work, 'diffusers', 'unet',
                            'diffusion_pytorch_model.safetensors'))
    ub = load_file(osp.join(resumed, 'diffusers', 'unet',
                            'diffusion_pytorch_model.safetensors'))
    assert ua.keys() == ub.keys()
    for key in ua:
        torch.testing.assert_close(ub[key], ua[key], rtol=1e-6, atol=1e-7)


def test_seg_demo_trains_on_the_pretrained_folder(pretrained, run_tool,
                                                  fast_demo_options):
    cwd, work = pretrained
    folder = osp.join(work, 'diffusers')
    seg_work = osp.join(cwd, 'work_dirs', 'seg')
    # lr 0: the checkpoint must hold exactly the exported U-Net
    run_tool('tools/train.py', SEG, '--work-dir', seg_work, '--cfg-options',
             *fast_demo_options, 'train_cfg.max_iters=2',
             f'{DS}.num_train=8', f'{DS}.num_val=2', f'{DS}.size=64',
             f'model.backbone.pretrained={folder}',
             'model.backbone.scale_latents=True',
             'optim_wrapper.optimizer.lr=0', cwd=cwd)
    ckpt = torch.load(osp.join(seg_work, 'iter_2.pth'), weights_only=False)
    unet = load_file(osp.join(folder, 'unet',
                              'diffusion_pytorch_model.safetensors'))
    state = ckpt['state_dict']
    for key, value in unet.items():
        assert torch.equal(state['backbone.unet.' + key], value), key


def test_probe_features_on_the_pretrained_folder(pretrained, run_tool):
    cwd, work = pretrained
    out = osp.join(cwd, 'probe')
    val = 'val_dataloader.dataset'
    proc = run_tool(
        'tools/analysis_tools/probe_features.py', SEG, '--pretrained',
        osp.join(work, 'diffusers'), '--timesteps', '1', '100',
        '--num-train', '4', '--num-val', '2', '--steps', '3', '--out', out,
        '--cfg-options', 'custom_hooks.0.steps=2', 'custom_hooks.0.size=64',
        f'{DS}.num_train=8', f'{DS}.num_val=2', f'{DS}.size=64',
        f'{val}.num_train=8', f'{val}.num_val=2', f'{val}.size=64', cwd=cwd)
    result = json.load(open(osp.join(out, 'probe.json')))
    assert result['metric'] == 'mIoU'
    assert sorted(result['table']) == ['1', '100']
    assert sorted(result['table']['1']) == ['0', '1', '2', '3']
    assert all(0 <= v <= 100 for row in result['table'].values()
               for v in row.values())
    assert osp.getsize(osp.join(out, 'probe.png')) > 0
    assert 't=   100 |' in proc.stdout and 'best: t=' in proc.stdout


MMDET_CONFIG = """_base_ = 'mmdiff::pretrain/diffusion-pretrain_tiny_demo-unlabelled.py'
custom_imports = dict(imports=[
    'mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets',
    'mmdiff.datasets.demo_datasets', 'mmdet.datasets'])
# an mmdet data set as it is; no LoadAnnotations: boxes and masks unread
train_dataloader = dict(batch_size=2, dataset=dict(
    _delete_=True, type='mmdet.CocoDataset', data_root='{root}',
    ann_file='annotations/instances_train2017.json',
    data_prefix=dict(img='train2017/'),
    pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='mmdet.Resize', scale=(64, 64), keep_ratio=False),
        dict(type='mmdet.PackDetInputs')]))
"""


def test_pretrain_on_an_mmdet_dataset_config(tmp_path, run_tool, load_tool,
                                             logged_iters):
    """A user's config in its own folder inherits the demo pretraining
    config (``mmdiff::``) and swaps in mmdet's ``CocoDataset`` on a COCO
    layout: tools/train.py pretrains on its images and exports."""
    layouts = load_tool('tests/test_datasets/layouts.py')
    root = layouts.coco(str(tmp_path / 'coco'), num_train=3)
    config = tmp_path / 'my_configs' / 'pretrain_on_coco.py'
    config.parent.mkdir()
    config.write_text(MMDET_CONFIG.format(root=root))
    work = str(tmp_path / 'work')
    run_tool('tools/train.py', str(config), '--work-dir', work,
             '--cfg-options', 'train_cfg.max_iters=2',
             'default_hooks.checkpoint.interval=2',
             'default_hooks.logger.interval=1',
             'custom_hooks.0.steps=2', 'custom_hooks.0.size=64',
             'custom_hooks.2.num_samples=2',
             'custom_hooks.2.sample_steps=2', cwd=str(tmp_path))
    records = logged_iters(work)
    assert sorted(records) == [1, 2]
    assert all(0 < r['loss'] < 10 for r in records.values())
    assert osp.isfile(osp.join(work, 'diffusers', 'unet',
                               'diffusion_pytorch_model.safetensors'))


def test_probe_features_depth(pretrained, run_tool):
    """The depth demo config: RMSE per t x tap, the best is the lowest, and
    the chance score (mean training depth everywhere) is reported."""
    cwd, work = pretrained
    out = osp.join(cwd, 'probe_depth')
    depth = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-depth_demo-nyu.py')
    val = 'val_dataloader.dataset'
    proc = run_tool(
        'tools/analysis_tools/probe_features.py', depth, '--pretrained',
        osp.join(work, 'diffusers'), '--timesteps', '1', '200', '--taps',
        '0', '1', '--num-train', '4', '--num-val', '2', '--steps', '3',
        '--out', out, '--cfg-options', 'custom_hooks.0.steps=2',
        'custom_hooks.0.size=64', f'{DS}.num_train=4',
        f'{DS}.num_val=2', f'{DS}.size=64', f'{val}.num_train=4',
        f'{val}.num_val=2', f'{val}.size=64', cwd=cwd)
    result = json.load(open(osp.join(out, 'probe.json')))
    assert result['metric'] == 'RMSE'
    values = {(t, tap): v for t, row in result['table'].items()
              for tap, v in row.items()}
    assert sorted(values) == [('1', '0'), ('1', '1'), ('200', '0'),
                              ('200', '1')]
    assert all(0 < v < 20 for v in values.values())  # metres, finite
    assert result['best']['value'] == min(values.values())
    assert 0 < result['chance'] < 20
    assert 'chance (no features)' in proc.stdout


def test_probe_depth_head_learns_metres():
    """Features that carry the depth linearly: the probe's head must get
    far below chance in its default 100 steps (a head regressing raw metres
    from 0 at lr 1e-2 cannot even reach the mean depth in that many)."""
    from mmdiff.analysis import chance, fit_and_score
    gen = torch.Generator().manual_seed(0)
    depth = 2.0 + 3.0 * torch.rand(12, 16, 16, generator=gen)  # 2..5 m
    feats = torch.cat([depth[:, None], torch.randn(12, 3, 16, 16,
                                                   generator=gen)], 1)
    rmse = fit_and_score(feats[:8], depth[:8], feats[8:], depth[8:],
                         'depth', 1, seed=0, lr=1e-2, steps=100)
    floor = chance(depth[:8], depth[8:], 'depth', 1)
    assert rmse < 0.25 * floor, (rmse, floor)


def test_probe_chance_scores():
    """Chance by hand: seg = the training set's majority class everywhere
    (mmseg's mIoU over classes present); depth = its mean depth."""
    from mmdiff.analysis import chance
    train = torch.tensor([[[0, 0, 0, 1]]])  # class 0 is the majority
    val = torch.tensor([[[0, 1, 1, 255]]])
    # predicting 0: IoU(0) = 1/3 (1 hit, 1 + 2 - 1 = 3 union), IoU(1) = 0
    assert chance(train, val, 'seg', 2) == pytest.approx(100 / 6)
    train_d = torch.tensor([[[1.0, 3.0, 0.0]]])  # 0: invalid, mean 2
    val_d = torch.tensor([[[2.0, 4.0, 0.0]]])
    assert chance(train_d, val_d, 'depth', 1) == pytest.approx(
        (2.0)**0.5)  # errors 0 and 2 over the two valid pixels


PRETRAIN_CONFIGS = sorted(
    osp.join(REPO, 'configs', 'pretrain', n)
    for n in os.listdir(osp.join(REPO, 'configs', 'pretrain')))


@pytest.mark.parametrize('path', PRETRAIN_CONFIGS,
                         ids=[osp.basename(p) for p in PRETRAIN_CONFIGS])
def test_pretrain_configs_build(path, tmp_path):
    """Each config's model on SD1.5's real shapes (meta device, no
    weights) and with the tiny U-Net; its data set on a small folder.
    Caption configs get a tiny CLIP of SD1.5's width (768) for the real
    shapes, of the tiny U-Net's (32) for the tiny one."""
    from mmengine.config import Config
    from mmengine.registry import DATASETS, MODELS, DefaultScope
    from mmengine.utils import import_modules_from_strings

    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    from mmdiff.models.diffusion.presets import SD_VAE, real_unet_cfg
    from mmdiff.testing.clip import build_tiny_clip
    cfg = Config.fromfile(path)
    import_modules_from_strings(**cfg.custom_imports)
    model = cfg.model.copy()
    caption = model.get('conditioning') == 'caption'
    clips = {dim: build_tiny_clip(str(tmp_path / f'clip{dim}'), dim=dim,
                                  intermediate_size=16)
             for dim in ((768, 32) if caption else ())}
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        if model.get('pretrained') is not None:
            real = dict(model, pretrained=None,
                        unet_cfg=real_unet_cfg(model['pretrained']),
                        vae_cfg=SD_VAE)
            if caption:
                real['text_encoder'] = clips[768]
            with torch.device('meta'):
                built = MODELS.build(real)
            trainable = sum(p.numel() for p in built.parameters()
                            if p.requires_grad)
            if model.get('lora'):  # adapters only: ~0.1-1% of 860M
                assert 0 < trainable < 10e6, trainable
            else:
                assert trainable > 800e6, trainable
        tiny = dict(model, pretrained=None, unet_cfg=tiny_unet_cfg(),
                    vae_cfg=tiny_vae_cfg(), vae_weights=None)
        if caption:
            tiny['text_encoder'] = clips[32]
        built = MODELS.build(tiny)
        assert built.prediction_type in ('epsilon', 'v_prediction')
        ds_cfg = cfg.train_dataloader.dataset.copy()
        if ds_cfg.type == 'ImageFolderDataset':
            import cv2
            import numpy as np
            root = tmp_path / 'images'
            root.mkdir()
            for i, shape in enumerate([(600, 800, 3), (513, 512, 3)]):
                cv2.imwrite(str(root / f'{i}.png'),
                            np.full(shape, 100, np.uint8))
                (root / f'{i}.txt').write_text(f'caption {i}')
            ds_cfg.data_root = str(root)
            item = DATASETS.build(ds_cfg)[0]
            assert tuple(item['inputs'].shape) == (3, 512, 512)
            if caption:
                assert item['data_samples'].caption == 'caption 0'
