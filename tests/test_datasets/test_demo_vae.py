"""The demos' pretrained tiny VAE and the backbone's ``vae_weights``."""
import json
import os
import os.path as osp

import pytest
import torch

from mmdiff.datasets.demo_vae import META_FILE, ensure_demo_vae
from mmdiff.engine import DemoVAEHook
from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg

# a few cheap steps: the tests check the plumbing, the demos the quality
FAST = dict(steps=3, batch_size=2, size=64)


@pytest.fixture(scope='module')
def vae_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('demo-vae') / 'vae')
    assert ensure_demo_vae(out, tiny_vae_cfg(), **FAST) == out
    return out


def test_written_as_a_diffusers_folder_with_its_arguments(vae_dir):
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(vae_dir, local_files_only=True)
    assert list(vae.config.block_out_channels) == list(
        tiny_vae_cfg()['block_out_channels'])
    with open(osp.join(vae_dir, META_FILE)) as f:
        meta = json.load(f)
    assert meta['steps'] == FAST['steps']
    assert meta['final_reconstruction_mse'] > 0
    # trained: the weights moved away from a fresh init of the same seed
    torch.manual_seed(1000)
    fresh = AutoencoderKL(**tiny_vae_cfg())
    assert not torch.equal(fresh.encoder.conv_in.weight,
                           vae.encoder.conv_in.weight)
    # nothing half-written next to it (the writers' lock file stays)
    assert sorted(os.listdir(osp.dirname(vae_dir))) == ['.vae.lock', 'vae']


def test_reused_and_deterministic(vae_dir, tmp_path, capsys):
    from diffusers import AutoencoderKL
    assert ensure_demo_vae(vae_dir, tiny_vae_cfg(), **FAST) is None
    again = str(tmp_path / 'vae')
    ensure_demo_vae(again, tiny_vae_cfg(), **FAST)
    # mmengine's progress bar: steps done and an ETA
    out = capsys.readouterr().out
    assert f'{FAST["steps"]}/{FAST["steps"]}' in out and 'ETA' in out
    a = AutoencoderKL.from_pretrained(vae_dir).state_dict()
    b = AutoencoderKL.from_pretrained(again).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_refuses_a_folder_made_otherwise(vae_dir, tmp_path):
    with pytest.raises(FileExistsError, match='Delete the folder'):
        ensure_demo_vae(vae_dir, tiny_vae_cfg(), **dict(FAST, steps=4))
    other = tmp_path / 'other'
    other.mkdir()
    with pytest.raises(FileExistsError, match='missing'):
        ensure_demo_vae(str(other), tiny_vae_cfg(), **FAST)


def test_hook_makes_it_before_run(tmp_path):
    out = str(tmp_path / 'vae')
    DemoVAEHook(out, tiny_vae_cfg(), **FAST).before_run(runner=None)
    assert osp.isfile(osp.join(out, META_FILE))


def test_backbone_loads_vae_weights(vae_dir):
    from diffusers import AutoencoderKL
    saved = AutoencoderKL.from_pretrained(vae_dir).state_dict()
    model = DiffusionBackbone(unet_cfg=tiny_unet_cfg(),
                              vae_cfg=tiny_vae_cfg(), vae_weights=vae_dir)
    model.init_weights()
    own = model.vae.state_dict()
    assert own and all(torch.equal(v, saved[k]) for k, v in own.items())
    feats = model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [f.shape[-1] for f in feats] == [8, 4, 2, 1]


def test_backbone_vae_weights_errors(vae_dir, tmp_path):
    missing = DiffusionBackbone(unet_cfg=tiny_unet_cfg(),
                                vae_cfg=tiny_vae_cfg(),
                                vae_weights=str(tmp_path / 'nope'))
    with pytest.raises(FileNotFoundError, match='not a folder or a hub id'):
        missing.init_weights()
    wider = dict(tiny_vae_cfg(), block_out_channels=(32, 32, 64, 128))
    mismatch = DiffusionBackbone(unet_cfg=tiny_unet_cfg(), vae_cfg=wider,
                                 vae_weights=vae_dir)
    with pytest.raises(RuntimeError, match='does not match'):
        mismatch.init_weights()


def test_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    ensure_demo_vae(str(tmp_path / 'vae'), tiny_vae_cfg(), **FAST)
    assert torch.equal(torch.rand(3), expected)


def test_depth_fraction_mixes_depth_maps_in(vae_dir, tmp_path):
    """The generative-depth demo's VAE: the first round(B * fraction)
    entries of each batch are the rendered scenes' depth maps as grey images
    (d / 10 m to [-1, 1]), the others their RGB images, from the same draws
    (an RGB-only batch renders the same scenes)."""
    import numpy as np
    from mmdiff.datasets.demo_scene import render_scene
    from mmdiff.datasets.demo_vae import _batch
    rng = np.random.default_rng(5)
    scenes = [render_scene(rng, 32) for _ in range(4)]
    mixed = _batch(np.random.default_rng(5), 4, 32, num_depth=2)
    rgb = _batch(np.random.default_rng(5), 4, 32)
    for i in range(2):
        grey = torch.from_numpy(scenes[i]['depth']).float() / 10 * 2 - 1
        for c in range(3):
            torch.testing.assert_close(mixed[i, c], grey.clamp(-1, 1))
    torch.testing.assert_close(mixed[2:], rgb[2:])
    torch.testing.assert_close(
        rgb[0], torch.from_numpy(scenes[0]['img']).permute(2, 0, 1).float()
        / 127.5 - 1)
    out = str(tmp_path / 'vae_depth')
    ensure_demo_vae(out, tiny_vae_cfg(), **FAST, depth_fraction=0.5)
    with open(osp.join(out, META_FILE)) as f:
        assert json.load(f)['depth_fraction'] == 0.5
    with open(osp.join(vae_dir, META_FILE)) as f:
        assert 'depth_fraction' not in json.load(f)  # RGB-only: as before
    with pytest.raises(FileExistsError, match='Delete the folder'):
        ensure_demo_vae(vae_dir, tiny_vae_cfg(), **FAST, depth_fraction=0.5)
    with pytest.raises(ValueError, match='depth_fraction'):
        ensure_demo_vae(str(tmp_path / 'bad'), tiny_vae_cfg(), **FAST,
                        depth_fraction=1.5)
