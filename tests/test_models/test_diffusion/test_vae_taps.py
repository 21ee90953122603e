"""Finer pyramid levels from the VAE encoder (``vae_taps``)."""
import pytest
import torch

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.diffusion.presets import SD_VAE
from mmdiff.models.diffusion import tiny_unet_cfg
from mmdiff.testing import demo_images, tiny_vpd

K = 3


def build(**kwargs):
    return tiny_vpd(num_classes=K, **kwargs)


def encoder_blocks(vae, images):
    """The VAE encoder's down-block outputs, run block by block here (not
    through the backbone's hooks)."""
    enc = vae.encoder
    h = enc.conv_in(images)
    outs = []
    for block in enc.down_blocks:
        h = block(h)
        outs.append(h)
    return outs


def test_levels_are_the_encoder_blocks_and_unet_taps_unchanged():
    plain = build().eval()
    p2 = build(vae_taps=(0, 1, 'down_blocks.1.resnets.0')).eval()
    p2.load_state_dict(plain.state_dict())
    x = demo_images(2, (70, 90), 0)
    with torch.no_grad():
        outs, ref = p2(x), plain(x)
        padded = torch.nn.functional.pad(x, (0, 128 - 90, 0, 128 - 70))
        blocks = encoder_blocks(p2.vae, padded)
        res0 = p2.vae.encoder.down_blocks[1].resnets[0](blocks[0], None)
    assert len(outs) == 3 + len(ref)
    # VAE levels first, in the given order, cropped to ceil(H / s)
    for out, want, s in zip(outs, (blocks[0], blocks[1], res0), (2, 4, 2)):
        assert out.shape[-2:] == (-(-70 // s), -(-90 // s))
        torch.testing.assert_close(
            out, want[..., :out.shape[-2], :out.shape[-1]], rtol=0, atol=0)
    # the U-Net taps behind them are the plain backbone's
    for a, b in zip(outs[3:], ref):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # feature_info / out_channels lead with the VAE levels
    assert p2.feature_info[:3] == [
        dict(num_chs=32, reduction=2, module='vae.encoder.down_blocks.0'),
        dict(num_chs=32, reduction=4, module='vae.encoder.down_blocks.1'),
        dict(num_chs=32, reduction=2,
             module='vae.encoder.down_blocks.1.resnets.0'),
    ]
    assert p2.feature_info[3:] == plain.feature_info
    assert p2.out_channels == tuple(o.shape[1] for o in outs)


def test_one_vae_pass_per_forward():
    model = build(vae_taps=(1, )).eval()
    calls = []
    model.vae.encoder.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(demo_images(1, 64, 0))
    assert len(calls) == 1


def test_sliced_or_tiled_encoding_is_refused():
    """Sliced encoding runs the encoder once per image: the hooks would
    keep the last image's activations for the whole batch."""
    model = build(vae_taps=(1, )).eval()
    model.vae.enable_slicing()
    with pytest.raises(RuntimeError, match='disable_slicing'):
        with torch.no_grad():
            model(demo_images(2, 64, 0))
    model.vae.disable_slicing()
    with torch.no_grad():
        assert model(demo_images(2, 64, 0))[0].shape[0] == 2


def test_frozen_vae_levels_carry_no_gradient():
    model = build(vae_taps=(1, )).train()
    outs = model(demo_images(2, 64, 0))
    assert not outs[0].requires_grad and outs[1].requires_grad
    assert not any(p.requires_grad for p in model.vae.parameters())
    assert not model.vae.training


def test_unfrozen_vae_trains_through_levels_and_latents():
    model = build(vae_taps=(1, ), freeze_vae=False).train()
    assert model.vae.training
    outs = model(demo_images(2, 64, 0))
    assert outs[0].requires_grad
    outs[0].mean().backward()
    block1 = model.vae.encoder.down_blocks[1].resnets[0].conv1.weight
    assert block1.grad is not None and block1.grad.abs().sum() > 0
    model.zero_grad()
    # the U-Net taps reach the encoder's last layers through the latents
    model(demo_images(2, 64, 0))[-1].mean().backward()
    assert model.vae.quant_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('taps,match', [
    ((7, ), 'out of range'),
    ((-1, ), 'out of range'),
    (('down_blocks.9', ), 'not a module of the VAE encoder'),
    ((1, 1), 'twice'),
    ((1, 'down_blocks.1'), 'twice'),
    ((True, ), 'indices'),
    ((1.0, ), 'indices'),
    (1, 'sequence'),
])
def test_bad_vae_taps_are_refused(taps, match):
    with pytest.raises(ValueError, match=match):
        build(vae_taps=taps)


def test_sd_vae_levels_on_meta_device():
    """SD's own VAE layout (diffusers' SD1.5 vae/config.json): 128 channels
    at stride 2 and 256 at stride 4, no memory used."""
    with torch.device('meta'):
        model = DiffusionBackbone(unet_cfg=tiny_unet_cfg(), vae_cfg=SD_VAE,
                                  vae_taps=(0, 1))
    assert [(i['num_chs'], i['reduction'])
            for i in model.feature_info[:2]] == [(128, 2), (256, 4)]
