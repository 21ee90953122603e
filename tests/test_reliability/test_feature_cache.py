"""Issue 24, item 8: the feature cache serves only the features the backbone
would compute.

Through the cache benchmark tool (``tools/analysis_tools/
benchmark_feature_cache.py --storage disk --cache-dir``, whose second run
reuses the first run's folder and compares what the cache serves with
recomputed features), a ``CachedBackbone`` given a module, as a Python user
builds one, and two processes sharing one cache folder.
"""
import logging
import multiprocessing
import os
import os.path as osp

import torch
from mmengine.logging import MMLogger

from mmdiff.models.backbones.cached import CachedBackbone, FeatureStore
from mmdiff.testing import demo_images, tiny_vpd

BENCH = 'tools/analysis_tools/benchmark_feature_cache.py'
ARGS = ['--storage', 'disk', '--num-images', '4', '--batch', '2',
        '--epochs', '1', '--input-size', '64', '--num-tokens', '4']


def _entries(folder):
    return sorted(osp.join(folder, f) for f in os.listdir(folder)
                  if f.endswith('.pt'))


def _rewrite(path, change, fresh_checksum=False):
    """Replace an entry's tensors by ``change(tensor)``; its stored sha256
    kept (the damage a checksum finds) or made to match (what only the
    shape and value checks find)."""
    entry = torch.load(path, weights_only=True)
    if isinstance(entry, list):  # the entries of mmdiff <= 0.x
        torch.save([change(t) for t in entry], path)
        return
    entry['feats'] = [change(t) for t in entry['feats']]
    if fresh_checksum:
        from mmdiff.utils.digest import tensors_sha256
        entry['sha256'] = tensors_sha256(entry['feats'])
    torch.save(entry, path)


def test_bad_entries_are_recomputed_by_the_benchmark(load_tool, tmp_path):
    bench = load_tool(BENCH)
    cache = str(tmp_path / 'cache')
    first = bench.main(ARGS + ['--cache-dir', cache])
    assert first['identical_features'] and first['store']['misses'] == 4
    truncated, zeroed, reshaped, nan = _entries(cache)
    with open(truncated, 'rb') as f:  # gave a raw OSError on every run
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    _rewrite(zeroed, lambda t: torch.zeros_like(t))  # was served as is
    # wrong shape / non-finite, even with a checksum that matches them
    _rewrite(reshaped, lambda t: t[:, :1].clone(), fresh_checksum=True)
    _rewrite(nan, lambda t: torch.full_like(t, float('nan')),
             fresh_checksum=True)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)

    again = bench.main(ARGS + ['--cache-dir', cache])
    out = '\n'.join(r.getMessage() for r in records)
    assert again['identical_features']  # the cache served what was computed
    assert again['store']['invalid'] == 4 and again['store']['misses'] == 4
    for path in (truncated, zeroed, reshaped, nan):
        assert f'cache entry {path} is' in out and 'recomputing' in out
    third = bench.main(ARGS + ['--cache-dir', cache])  # repaired: all hits
    assert third['identical_features'] and third['store']['hits'] == 4


def test_module_timestep_is_in_the_key(tmp_path):
    """A module's repr() omits timestep: t=1 features were served for
    t=500."""
    images = demo_images(2, 64)
    cache = str(tmp_path / 'cache')
    t1 = CachedBackbone(tiny_vpd(timestep=1), freeze=True, cache_dir=cache)
    t1(images)
    backbone = tiny_vpd(timestep=500)  # the same weights
    with torch.no_grad():
        direct = backbone(images)
    t500 = CachedBackbone(backbone, freeze=True, cache_dir=cache)
    served = t500(images)
    assert t500.store.stats()['hits'] == 0
    for a, b in zip(served, direct):
        torch.testing.assert_close(a, b)
    # the same backbone as a config gives the same keys as the module
    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    torch.manual_seed(0)
    from_cfg = CachedBackbone(
        dict(type='mmdiff.VPD', unet_cfg=tiny_unet_cfg(),
             vae_cfg=tiny_vae_cfg(), timestep=500,
             class_embeddings=dict(num_classes=4, dim=32)),
        freeze=True, cache_dir=cache)
    assert from_cfg.keys(images) == t500.keys(images)


def _store_loop(cache: str, seed: int, steps: int, errors) -> None:
    try:
        store = FeatureStore(0.004, cache)  # about 3 entries of 1 KB
        gen = torch.Generator().manual_seed(seed)
        for step in range(steps):
            key = f'k{int(torch.randint(8, (1, ), generator=gen))}'
            if store.get(key) is None:
                store.put(key, (torch.full((1, 256), float(step)), ))
    except Exception as e:  # noqa: BLE001  (reported to the parent)
        errors.put(f'{type(e).__name__}: {e}')


def test_two_processes_share_one_cache_folder(tmp_path):
    """Once one store evicted, the other crashed (FileNotFoundError from
    os.utime)."""
    ctx = multiprocessing.get_context('fork')
    errors = ctx.Queue()
    cache = str(tmp_path / 'shared')
    os.makedirs(cache)
    procs = [ctx.Process(target=_store_loop, args=(cache, s, 300, errors))
             for s in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == [] and [p.exitcode for p in procs] == [0, 0]
    total = sum(osp.getsize(p) for p in _entries(cache))
    assert total <= 0.004e6 + 2000  # the cap holds, give or take a store
