"""CachedBackbone: a frozen backbone's features computed once per image."""
import pytest
import torch

from mmdiff.models.backbones.cached import (CachedBackbone, FeatureStore,
                                            module_digest)
from mmdiff.models.diffusion import tiny_sd_configs
from mmdiff.registry import MODELS
from mmdiff.testing import demo_images


def _cfg(**kwargs):
    unet_cfg, vae_cfg = tiny_sd_configs()
    cfg = dict(type='mmdiff.VPD', unet_cfg=unet_cfg, vae_cfg=vae_cfg,
               use_attn=False, text_adapter=False, freeze_unet=True)
    cfg.update(kwargs)
    return cfg


@pytest.fixture
def cached():
    torch.manual_seed(0)
    return MODELS.build(dict(type='mmdiff.CachedBackbone', backbone=_cfg(),
                             max_size_mb=64))


def test_hit_returns_identical_features(cached):
    images = demo_images()
    with torch.no_grad():
        direct = cached.backbone(images)
    first = cached(images)
    assert cached.store.stats()['misses'] == 2
    second = cached(images)
    assert cached.store.stats()['hits'] == 2
    assert len(first) == len(second) == len(direct)
    for a, b, c in zip(first, second, direct):
        assert torch.equal(a, b) and torch.equal(a, c)
        assert not b.requires_grad
    assert cached.out_channels == cached.backbone.out_channels


def test_mixed_batch_computes_only_missing(cached):
    images = demo_images(3)
    cached(images[:1])
    out = cached(images)
    assert cached.store.stats()['hits'] == 1
    with torch.no_grad():
        direct = cached.backbone(images)
    for a, b in zip(out, direct):
        # batch composition changes GEMM blocking: float noise only
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_key_changes_with_image_config_and_weights(cached):
    images = demo_images(2)
    key_a, key_b = cached.keys(images)
    assert key_a != key_b
    assert cached.keys(images[:1].clone())[0] == key_a
    edited = images[:1].clone()
    edited[0, 0, 0, 0] += 1e-3
    assert cached.keys(edited)[0] != key_a
    torch.manual_seed(0)
    other_cfg = CachedBackbone(_cfg(timestep=2))
    assert other_cfg.keys(images[:1])[0] != key_a
    torch.manual_seed(0)
    same = CachedBackbone(_cfg())
    assert same.keys(images[:1])[0] == key_a
    torch.manual_seed(0)
    other_weights = CachedBackbone(_cfg())
    with torch.no_grad():
        next(other_weights.backbone.unet.parameters()).add_(1.0)
    assert module_digest(other_weights.backbone) != \
        module_digest(same.backbone)
    assert other_weights.keys(images[:1])[0] != key_a
    assert cached.keys(images[:1], torch.tensor([3]))[0] != key_a


def test_size_cap_evicts_least_recently_used():
    feats = (torch.zeros(250_000), )  # 1 MB each
    store = FeatureStore(max_size_mb=2.5)
    store.put('a', feats)
    store.put('b', feats)
    assert store.get('a') is not None  # a is now the most recent
    store.put('c', feats)
    assert 'b' not in store and 'a' in store and 'c' in store
    assert store.stats()['evictions'] == 1
    assert store.total <= store.max_bytes
    store.put('huge', (torch.zeros(1_000_000), ))  # 4 MB > cap: skipped
    assert 'huge' not in store and len(store) == 2


def test_disk_cache_persists_and_caps(tmp_path):
    feats = (torch.arange(250_000, dtype=torch.float32), )
    store = FeatureStore(max_size_mb=2.5, cache_dir=str(tmp_path))
    store.put('a', feats)
    store.put('b', feats)
    again = FeatureStore(max_size_mb=2.5, cache_dir=str(tmp_path))
    assert len(again) == 2
    assert torch.equal(again.get('a')[0], feats[0])
    again.put('c', feats)
    assert sorted(p.stem for p in tmp_path.glob('*.pt')) == ['a', 'c']


def test_disk_backed_backbone_hits_across_instances(tmp_path):
    images = demo_images(1)
    torch.manual_seed(0)
    first = CachedBackbone(_cfg(), cache_dir=str(tmp_path))
    out = first(images)
    torch.manual_seed(0)
    second = CachedBackbone(_cfg(), cache_dir=str(tmp_path))
    again = second(images)
    assert second.store.stats()['hits'] == 1
    for a, b in zip(out, again):
        assert torch.equal(a, b)


def test_frozen_backbone_required():
    with pytest.raises(ValueError, match='frozen backbone'):
        CachedBackbone(_cfg(freeze_unet=False))
    torch.manual_seed(0)
    cached = CachedBackbone(_cfg(freeze_unet=False), freeze=True)
    assert not any(p.requires_grad for p in cached.parameters())
    cached.train()
    assert not cached.backbone.training
    next(cached.backbone.unet.parameters()).requires_grad_(True)
    with pytest.raises(ValueError, match='frozen backbone'):
        cached(demo_images(1))
    with pytest.raises(ValueError, match='deterministic'):
        CachedBackbone(_cfg(noise='random'))
