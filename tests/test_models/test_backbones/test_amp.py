"""``amp_dtype`` (the backbone under torch.autocast; CPU bf16 here) and
batch independence of the features."""
import pytest
import torch

from mmdiff.models.backbones import VPD
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.testing import tiny_vpd


def _vpd(**kwargs):
    model = tiny_vpd(use_attn=True, **kwargs)
    model.init_weights()
    return model


def test_bf16_autocast_close_to_fp32_and_returns_fp32():
    ref, amp = _vpd(), _vpd(amp_dtype='bfloat16')
    amp.load_state_dict(ref.state_dict())
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected, got = ref(images), amp(images)
    assert [g.shape for g in got] == [e.shape for e in expected]
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32  # necks/heads stay fp32
        assert torch.isfinite(g).all() and not torch.equal(g, e)  # bf16 ran

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    # bf16 keeps 8 mantissa bits: rounding grows through a random tiny
    # U-Net's depth, so only the finest tap and the maps are held tight
    assert rel(got[0], expected[0]) < 0.1
    for i in (1, 2):  # 1/16 and 1/32 taps end in the K=4 attention maps
        assert rel(got[i][:, -4:], expected[i][:, -4:]) < 0.02


def test_bf16_autocast_trains():
    model = _vpd(amp_dtype='bfloat16').train()
    loss = sum(f.float().square().mean()
               for f in model(torch.rand(1, 3, 64, 64) * 2 - 1))
    loss.backward()
    grads = [p.grad for p in model.unet.parameters() if p.requires_grad]
    assert all(g is None or g.dtype == torch.float32 for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_bad_amp_dtype():
    with pytest.raises(ValueError, match="amp_dtype must be None, 'bfloat16'"):
        VPD(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
            class_embeddings=dict(num_classes=4, dim=32), amp_dtype='bf16')


def test_batch_features_equal_per_image_features():
    """No cross-image leakage: a batch gives each image's own features
    (padding, conditioning, attention maps and taps are per image)."""
    model = _vpd().eval()
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        batch = model(images)
        single = [model(images[i:i + 1]) for i in range(3)]
    for t, feat in enumerate(batch):
        for i in range(3):
            torch.testing.assert_close(feat[i:i + 1], single[i][t],
                                       rtol=1e-3, atol=1e-4)
