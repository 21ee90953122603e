"""projects/GenerativeDepth: one-step generative depth/normals (Lotus /
GenPercept / Marigold style) as an mmseg depth segmentor."""
import os.path as osp

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmdiff.models.diffusion import tiny_sd_configs
from mmdiff.testing import demo_images, tiny_sd_model
from projects.GenerativeDepth.generative_depth import GenerativeDepth

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'projects', 'GenerativeDepth', 'configs',
                'generative-depth_tiny_demo-nyu.py')


def _samples(batch=2, size=64, normals=False):
    gen = torch.Generator().manual_seed(0)
    out = []
    for _ in range(batch):
        s = SegDataSample()
        depth = torch.rand(1, size, size, generator=gen) * 8 + 0.5
        depth[:, :4] = 0  # invalid rows
        s.gt_depth_map = PixelData(data=depth)
        if normals:
            n = torch.nn.functional.normalize(
                torch.randn(3, size, size, generator=gen), dim=0)
            s.gt_normal_map = PixelData(data=n)
        s.set_metainfo(dict(ori_shape=(size, size), img_shape=(size, size)))
        out.append(s)
    return out


def test_targets_normalise_align_and_normals():
    from projects.GenerativeDepth.generative_depth import (align_affine,
                                                           depth_to_normals,
                                                           normalize_depth)
    depth = torch.linspace(1, 9, 101).reshape(1, 1, 1, 101)
    valid = torch.ones_like(depth, dtype=torch.bool)
    norm = normalize_depth(depth, valid, 'affine', quantile=0.02)
    # Marigold: the 2 % / 98 % quantiles map to -1 / 1, clipped beyond
    assert norm[0, 0, 0, 2].item() == pytest.approx(-1, abs=1e-5)
    assert norm[0, 0, 0, 98].item() == pytest.approx(1, abs=1e-5)
    assert norm.min() == -1 and norm.max() == 1
    metric = normalize_depth(depth, valid, 'metric', max_depth=10.)
    assert metric[0, 0, 0, 0].item() == pytest.approx(1 / 10 * 2 - 1)
    # least squares recovers a scale and shift exactly
    rel = torch.rand(1, 32, 32)
    gt = 3.5 * rel + 0.7
    aligned = align_affine(rel, gt, torch.ones_like(rel, dtype=torch.bool))
    assert torch.allclose(aligned, gt, atol=1e-5)
    # normals of a tilted plane n.P = d seen by a pinhole camera
    f, h, w = 40., 24, 32
    n = torch.nn.functional.normalize(torch.tensor([0.2, 0.3, -1.]), dim=0)
    ys, xs = torch.meshgrid(torch.arange(h) - (h - 1) / 2,
                            torch.arange(w) - (w - 1) / 2, indexing='ij')
    z = -2. / (n[0] * xs / f + n[1] * ys / f + n[2])
    normals = depth_to_normals(z[None, None].double(), focal=f)
    assert torch.allclose(normals[0, :, 1:-1, 1:-1],
                          n.double()[:, None, None].expand(3, h - 2, w - 2),
                          atol=1e-6)


@pytest.mark.parametrize('init', ['duplicate_halve', 'zero'])
def test_conv_in_widened_as_the_sources(init):
    """Marigold/Lotus-G: weights repeated and halved, so the image latent
    fed twice gives the pretrained conv's output; 'zero': the noisy half is
    ignored at init."""
    direct = tiny_sd_model(GenerativeDepth, input_mode='direct')
    model = tiny_sd_model(GenerativeDepth, input_mode='concat_noise',
                          conv_in_init=init)
    assert model.unet.conv_in.in_channels == 8
    assert model.unet.config.in_channels == 8
    old = direct.unet.conv_in  # same seed: the same pretrained-shape conv
    lat = torch.randn(1, 4, 8, 8)
    other = lat if init == 'duplicate_halve' else torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.unet.conv_in(torch.cat([lat, other], 1)),
                              old(lat), atol=1e-5)


@pytest.mark.parametrize('mode,loss', [('direct', 'latent_mse'),
                                       ('concat_noise', 'pixel_mse')])
def test_train_step_and_predict(mode, loss):
    model = tiny_sd_model(GenerativeDepth, input_mode=mode, loss=loss,
                          timestep=999, depth_mode='affine')
    losses = model.loss(demo_images(seed=1), _samples())
    assert list(losses) == [f'loss_{loss}']
    losses[f'loss_{loss}'].backward()
    assert model.unet.conv_in.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.vae.parameters())  # frozen
    model.eval()
    with torch.no_grad():
        out = model.predict(demo_images(1, 70, seed=1), _samples(1, 70))
    pred = out[0].pred_depth_map.data
    assert pred.shape == (1, 70, 70)  # padded to 64s inside, cropped back
    assert pred.min() >= 1e-3 and pred.max() <= 10.


def test_normal_target():
    model = tiny_sd_model(GenerativeDepth, target='normal', loss='latent_mse')
    # fabricated normals, and normals derived from depth when absent
    for samples in (_samples(normals=True), _samples()):
        loss = model.loss(demo_images(seed=1), samples)['loss_latent_mse']
        assert torch.isfinite(loss) and loss > 0
    model.eval()
    with torch.no_grad():
        out = model.predict(demo_images(1, seed=1), _samples(1, normals=True))
    n = out[0].pred_normal_map.data
    assert n.shape == (3, 64, 64) and 'pred_depth_map' not in out[0]
    assert torch.allclose(n.norm(dim=0), torch.ones(64, 64), atol=1e-4)
    # mmseg's evaluator scores them against the ground-truth depth's normals
    from mmengine.evaluator import Evaluator
    with torch.no_grad():
        out = model.predict(demo_images(1, seed=1), _samples(1))
    evaluator = Evaluator(dict(type='mmseg.NormalAngleMetric',
                               gt_from_depth=True))
    evaluator.process(out)
    res = evaluator.evaluate(1)
    assert 0 <= res['median'] <= 180 and 0 <= res['a30'] <= 100


def test_pretrained_folder_loads_then_widens(tmp_path):
    """pretrained= a diffusers folder (mmdiff's loading code): U-Net and
    the whole VAE (decoder too) load, conv_in is widened afterwards."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    unet_cfg, vae_cfg = tiny_sd_configs()
    torch.manual_seed(3)
    unet = UNet2DConditionModel(**unet_cfg)
    vae = AutoencoderKL(**vae_cfg)
    unet.save_pretrained(tmp_path / 'unet')
    vae.save_pretrained(tmp_path / 'vae')
    model = GenerativeDepth(pretrained=str(tmp_path),
                            input_mode='concat_noise', local_files_only=True)
    model.init_weights()
    assert torch.equal(model.unet.conv_in.weight,
                       unet.conv_in.weight.repeat(1, 2, 1, 1) / 2)
    assert torch.equal(model.vae.decoder.conv_out.weight,
                       vae.decoder.conv_out.weight)
    assert torch.equal(model.unet.mid_block.resnets[0].conv1.weight,
                       unet.mid_block.resnets[0].conv1.weight)


def test_bad_options():
    with pytest.raises(ValueError, match='input_mode'):
        tiny_sd_model(GenerativeDepth, input_mode='noise')
    with pytest.raises(ValueError, match='timestep'):
        tiny_sd_model(GenerativeDepth, timestep=1000)
    unet, vae = tiny_sd_configs()
    unet['in_channels'] = 8
    with pytest.raises(ValueError, match='in_channels'):
        GenerativeDepth(unet_cfg=unet, vae_cfg=vae)


def test_demo_trains_tests_and_resumes(train_test, run_tool, project_fast,
                                       tmp_path):
    """tools/train.py (AtomicCheckpointHook, NaNGuardHook, DemoVAEHook),
    tools/test.py with mmseg's DepthMetric, then --resume."""
    log, metrics = train_test(DEMO, str(tmp_path))
    assert 'Iter(train) [4/4]' in log and 'loss_latent_mse' in log
    assert {'rmse', 'abs_rel', 'd1'} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(float(metrics[k])))
               for k in ('rmse', 'abs_rel', 'd1'))
    proc = run_tool('tools/train.py', DEMO, '--work-dir',
                    str(tmp_path / 'work_dir'), '--resume', '--cfg-options',
                    *project_fast, 'train_cfg.max_iters=5',
                    'default_hooks.checkpoint.interval=5', cwd=str(tmp_path),
                    timeout=900)
    log = proc.stdout + proc.stderr
    assert 'resumed' in log.lower() and 'Iter(train) [5/5]' in log
    assert osp.isfile(tmp_path / 'work_dir' / 'iter_5.pth')


@pytest.mark.parametrize('name,mode', [
    ('generative-depth_sd2-base-direct_8xb16-20k_nyu-480x480.py', 'direct'),
    ('generative-depth_sd2-concat_8xb4-30k_kitti-352x704.py',
     'concat_noise')])
def test_reference_configs_build(name, mode):
    """The SD 2 reference configs carry the sources' settings (Lotus
    train_lotus_d_depth.sh: TIMESTEP=999, lr 3e-05; Marigold
    train_marigold_depth.yaml: lr 3.0e-05) and build (tiny U-Net and VAE
    instead of the SD 2 download)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope
    from mmengine.utils import import_modules_from_strings
    cfg = Config.fromfile(osp.join(osp.dirname(DEMO), name))
    assert cfg.model.pretrained.startswith('stabilityai/stable-diffusion-2')
    assert cfg.model.timestep == 999 and cfg.model.input_mode == mode
    assert cfg.optim_wrapper.optimizer.lr == 3e-5
    import_modules_from_strings(**cfg.custom_imports)
    unet, vae = tiny_sd_configs()
    cfg.model.update(pretrained=None, unet_cfg=unet, vae_cfg=vae)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    assert model.unet.conv_in.in_channels == (8 if mode != 'direct' else 4)


def _rotated(n, degrees):
    """``n`` (3,) rotated by ``degrees`` about an axis orthogonal to it."""
    import math
    axis = torch.nn.functional.normalize(
        torch.linalg.cross(n, torch.tensor([1., 0., 0.], dtype=n.dtype)),
        dim=0)
    a = math.radians(degrees)
    return n * math.cos(a) + torch.linalg.cross(axis, n) * math.sin(a)


def test_normal_angle_metric_hand_computed():
    """mmseg's evaluator with NormalAngleMetric on two images whose
    prediction differs from the ground truth by known angles: 0, 90, 180,
    10 and 25 degrees, plus a zero (missing) ground-truth normal. The pixels
    are pooled over the images, as Lotus's evaluation does. By hand: mean
    (0+90+180+10+25)/5 = 61, median 25, rmse sqrt((0+8100+32400+100+625)/5)
    = sqrt(8245), and 1/5, 1/5, 2/5, 2/5, 3/5 below 5, 7.5, 11.25, 22.5 and
    30 degrees."""
    import math
    from mmengine.evaluator import Evaluator
    import projects.GenerativeDepth.generative_depth  # noqa: F401 register
    n = torch.nn.functional.normalize(torch.tensor([.3, -.2, -1.]), dim=0)
    angles = [[0., 90.], [180., 10., 25., None]]  # None: missing gt
    samples = []
    for row in angles:
        gt = n[:, None, None].repeat(1, 1, len(row)).clone()
        pred = gt.clone()
        for j, a in enumerate(row):
            if a is None:
                gt[:, 0, j] = 0
            else:
                pred[:, 0, j] = _rotated(n, a) * 2.5  # length is ignored
        s = SegDataSample()
        s.gt_normal_map = PixelData(data=gt)
        s.pred_normal_map = PixelData(data=pred)
        samples.append(s)
    evaluator = Evaluator(dict(type='mmseg.NormalAngleMetric'))
    evaluator.process(samples)
    res = evaluator.evaluate(2)
    assert res['mean'] == pytest.approx(61., abs=1e-4)
    assert res['median'] == pytest.approx(25., abs=1e-4)
    assert res['rmse'] == pytest.approx(math.sqrt(8245.), abs=1e-4)
    expected = {'a5': 20., 'a7.5': 20., 'a11.25': 40., 'a22.5': 40.,
                'a30': 60.}
    for key, value in expected.items():
        assert res[key] == pytest.approx(value), key
    # ground truth from depth: a prediction equal to the plane's normals
    from projects.GenerativeDepth.generative_depth import (
        NormalAngleMetric, depth_to_normals)
    metric = NormalAngleMetric(gt_from_depth=True, focal=40.)
    ys, xs = torch.meshgrid(torch.arange(24) - 11.5, torch.arange(32) - 15.5,
                            indexing='ij')
    z = (-2. / (n[0] * xs / 40. + n[1] * ys / 40. + n[2]))[None]
    z[0, 5, 5] = 0  # missing depth: it and its 8 neighbours do not count
    metric.process({}, [dict(gt_depth_map=dict(data=z),
                             pred_normal_map=dict(data=n[:, None, None]
                                                  .expand(3, 24, 32)))])
    res = metric.compute_metrics(metric.results)
    assert res['mean'] < 1e-3 and res['a5'] == 100.
    assert metric.results[0].numel() == 24 * 32 - 9
    with pytest.raises(KeyError, match='gt_normal_map'):
        NormalAngleMetric().process({}, [dict(pred_normal_map=dict(data=z))])


def test_vae_ceiling_tool(tmp_path, one_thread):
    """projects/GenerativeDepth/tools/vae_ceiling.py: depth PNGs through a
    VAE folder's encoder and decoder, scored by DepthMetric (a perfect
    prediction scores rmse 0, d1 1)."""
    import importlib.util

    import cv2
    import numpy as np
    from diffusers import AutoencoderKL
    spec = importlib.util.spec_from_file_location(
        'vae_ceiling', osp.join(ROOT, 'projects', 'GenerativeDepth', 'tools',
                                'vae_ceiling.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    _, vae_cfg = tiny_sd_configs()
    torch.manual_seed(0)
    AutoencoderKL(**vae_cfg).save_pretrained(tmp_path / 'vae')
    (tmp_path / 'depth').mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(2):
        mm = (torch.rand(32, 32, generator=gen) * 8000 + 500).numpy()
        cv2.imwrite(str(tmp_path / 'depth' / f'{i}.png'),
                    mm.astype(np.uint16))
    res = tool.main([str(tmp_path / 'vae'), str(tmp_path / 'depth')])
    assert {'rmse', 'abs_rel', 'd1'} <= set(res) and res['rmse'] > 0
    gt = torch.rand(2, 1, 32, 32, generator=gen) * 8 + 0.5
    perfect = tool.score(gt, gt, 10.)
    assert perfect['rmse'] == pytest.approx(0, abs=1e-6)
    assert perfect['d1'] == pytest.approx(1.)
    with pytest.raises(FileNotFoundError, match='no \\*.png'):
        tool.main([str(tmp_path / 'vae'), str(tmp_path)])
