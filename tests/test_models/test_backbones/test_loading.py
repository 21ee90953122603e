"""Weights from every source: diffusers folder (offline), single file,
config only; init_weights semantics; one clear error when weights are
missing."""
import pytest
import torch

from mmdiff.models.backbones import VPD
from mmdiff.models.diffusion import tiny_sd_configs


@pytest.fixture
def offline(monkeypatch):
    """Switch the Hugging Face hub off, as on a machine without network."""
    import huggingface_hub.constants as hf_constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True, raising=False)


def _same(module, reference, skip=()):
    ref = reference.state_dict()
    for key, value in module.state_dict().items():
        assert torch.equal(value, ref[key]), key
    return len(ref) - len(module.state_dict())


def test_diffusers_folder_offline(sd_folder, offline):
    root, unet, vae = sd_folder
    model = VPD(pretrained=root, local_files_only=True,
                class_embeddings=dict(num_classes=3))
    # __init__ reads configs only; weights come in init_weights()
    assert not torch.equal(model.unet.conv_in.weight, unet.conv_in.weight)
    model.init_weights()
    assert model.is_init
    _same(model.unet, unet)
    # the VAE decoder is never built, the rest is loaded
    assert model.vae.decoder is None
    assert not any(k.startswith('decoder.') for k in model.vae.state_dict())
    _same(model.vae, vae)
    # mmengine must not re-initialise: a second call is a no-op
    with torch.no_grad():
        model.unet.conv_in.weight.add_(1.0)
    before = model.unet.conv_in.weight.clone()
    model.init_weights()
    assert torch.equal(model.unet.conv_in.weight, before)
    # loaded model extracts the same latents as the saved VAE
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model.encode(x),
                              vae.encode(x).latent_dist.mode(), atol=1e-6)


def test_host_init_does_not_overwrite_pretrained(sd_folder, offline):
    """A parent's init_weights() (as mmengine's runner calls it) loads SD
    weights once and then leaves them alone."""
    from mmengine.model import BaseModule
    root, unet, _ = sd_folder

    class Host(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Normal', layer='Conv2d',
                                           std=10.0))
            self.backbone = VPD(pretrained=root, local_files_only=True,
                                use_attn=False)

    host = Host()
    host.init_weights()
    _same(host.backbone.unet, unet)


def test_single_file_checkpoint(single_file_ckpt, offline):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint, load_single_file_checkpoint)
    ckpt, yaml_path = single_file_ckpt
    model = VPD(pretrained=ckpt, original_config=yaml_path,
                local_files_only=True, use_attn=False)
    model.init_weights()
    converted = convert_ldm_unet_checkpoint(
        load_single_file_checkpoint(ckpt), model.unet.config)
    state = model.unet.state_dict()
    assert set(converted) == set(state)
    assert all(torch.equal(state[k], v) for k, v in converted.items())


def test_config_only_random_init_needs_no_files():
    unet_cfg, vae_cfg = tiny_sd_configs()
    model = VPD(unet_cfg=unet_cfg, vae_cfg=vae_cfg, use_attn=False)
    model.init_weights()  # nothing to load, nothing fails
    assert model.unet.config.block_out_channels == (32, 64, 64, 64)


def test_missing_weights_one_clear_error(tmp_path, offline):
    with pytest.raises(FileNotFoundError,
                       match='looked for a diffusers folder.*To fix'):
        VPD(pretrained=str(tmp_path / 'no-such-dir' / 'sd'))
    with pytest.raises(FileNotFoundError,
                       match='single-file checkpoint.*To fix'):
        VPD(pretrained=str(tmp_path / 'sd-v1-5.ckpt'))
    with pytest.raises(FileNotFoundError,
                       match=r"hub id 'mmdiff-test/absent-sd'.*local Hugging"
                       r' Face cache only.*hf download '
                       r'mmdiff-test/absent-sd'):
        VPD(pretrained='mmdiff-test/absent-sd', local_files_only=True)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='unet/ and vae/'):
        VPD(pretrained=str(empty), local_files_only=True)


def test_single_file_without_config_offline_names_original_config(
        single_file_ckpt, offline):
    """diffusers would fetch the inferred SD config from the Hub."""
    ckpt, _ = single_file_ckpt
    with pytest.raises(FileNotFoundError, match='original_config'):
        VPD(pretrained=ckpt, local_files_only=True, use_attn=False)


def test_init_cfg_checkpoint_applies_after_sd_weights(sd_folder, offline,
                                                      tmp_path):
    """A trained mmdiff checkpoint (init_cfg) wins over the SD weights."""
    root, unet, _ = sd_folder
    prompts = dict(class_embeddings=dict(num_classes=2), use_attn=False)
    trained = VPD(pretrained=root, local_files_only=True, **prompts)
    trained.init_weights()
    with torch.no_grad():
        trained.unet.conv_in.weight.mul_(2.0)
        trained.conditioner.text_adapter.gamma.fill_(0.5)
    ckpt = tmp_path / 'trained.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               trained.state_dict().items()}}, str(ckpt))
    model = VPD(pretrained=root, local_files_only=True, **prompts,
                init_cfg=dict(type='Pretrained', checkpoint=str(ckpt),
                              prefix='backbone.'))
    model.init_weights()
    assert torch.equal(model.unet.conv_in.weight, trained.unet.conv_in.weight)
    assert torch.equal(model.conditioner.text_adapter.gamma,
                       trained.conditioner.text_adapter.gamma)
    assert not torch.equal(model.unet.conv_in.weight, unet.conv_in.weight)
