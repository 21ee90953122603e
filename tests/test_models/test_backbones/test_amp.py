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


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_amp_dtype_is_torch_autocast_on_every_tap(dtype='bfloat16'):
    """Every tap (maps included) of ``amp_dtype`` equals the fp32 backbone
    run under the user's own ``torch.autocast(dtype)``, far closer than
    fp32, the other half-precision type or a half round of the fp32 output
    come: a wrong dtype path breaks the bound. (bf16, CPU's half type;
    'float16' takes the same code path.)"""
    ref, amp = _vpd(), _vpd(amp_dtype=dtype)
    amp.load_state_dict(ref.state_dict())
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    other = 'float16' if dtype == 'bfloat16' else 'bfloat16'
    with torch.no_grad():
        fp32, got = ref(images), amp(images)
        with torch.autocast('cpu', dtype=getattr(torch, dtype)):
            expected = [t.float() for t in ref(images)]
        with torch.autocast('cpu', dtype=getattr(torch, other)):
            wrong = [t.float() for t in ref(images)]
    assert [g.shape for g in got] == [e.shape for e in fp32]
    assert len(got) == 4
    for tap, (g, e, f, w) in enumerate(zip(got, expected, fp32, wrong)):
        assert g.dtype == torch.float32  # necks/heads stay fp32
        err = _rel(g, e)
        assert err < 1e-3, (tap, err)
        # the bound tells the dtypes apart, at every tap
        for name, bad in (('fp32', f), (other, w),
                          ('fp32 rounded', f.to(getattr(torch, dtype)))):
            assert _rel(bad.float(), e) > 10 * max(err, 1e-4), (tap, name)


def test_bf16_autocast_trains():
    model = _vpd(amp_dtype='bfloat16').train()
    loss = sum(f.float().square().mean()
               for f in model(torch.rand(1, 3, 64, 64) * 2 - 1))
    loss.backward()
    grads = [p.grad for p in model.unet.parameters() if p.requires_grad]
    assert all(g is None or g.dtype == torch.float32 for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_bad_amp_dtype():
    with pytest.raises(ValueError, match=r"amp_dtype must be one of \[None, 'bfloat16'"):
        VPD(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
            class_embeddings=dict(num_classes=4, dim=32), amp_dtype='bf16')


def test_batch_features_equal_per_image_features():
    """No cross-image leakage: a batch gives each image's own features
    (padding, conditioning, attention maps and taps are per image).

    In float64: fp32 GEMMs block differently for batch 1 and 3, and the
    random U-Net amplifies that rounding to ~4e-4 (seen on an AVX2 host),
    while float64 leaves ~1e-12, so the bound stays tight on any CPU and a
    leak (order of the features, ~1) cannot hide under it."""
    model = _vpd().eval().double()
    images = (torch.rand(3, 3, 64, 64) * 2 - 1).double()
    with torch.no_grad():
        batch = model(images)
        single = [model(images[i:i + 1]) for i in range(3)]
    for t, feat in enumerate(batch):
        assert feat.dtype == torch.float64
        for i in range(3):
            torch.testing.assert_close(feat[i:i + 1], single[i][t],
                                       rtol=1e-9, atol=1e-9)
