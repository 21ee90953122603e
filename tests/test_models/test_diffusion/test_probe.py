"""mmdiff.models.diffusion.probe: one build-time forward of a tiny U-Net."""
import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor2_0
from torch import nn

from mmdiff.models.attention import AttentionStore
from mmdiff.models.diffusion import (FeatureTaps, TapsDone, tiny_unet_cfg,
                                     vpd_default_taps)
from mmdiff.models.diffusion.probe import graph_leaves, probe_unet


def _run(unet, taps, store):
    def run(latents, cond):
        t = torch.ones(latents.shape[0])
        store.active = True
        try:
            with taps.capture() as feats:
                try:
                    unet(latents, t, encoder_hidden_states=cond)
                except TapsDone:
                    pass
        finally:
            store.active = False
        return feats, {}
    return run


def _probe(paths=None, custom=None, **kwargs):
    """Probe a seeded tiny U-Net; ``custom`` processors (by name) are
    installed on it first, as a user or a library would."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**tiny_unet_cfg())
    if custom:
        unet.set_attn_processor(dict(unet.attn_processors, **custom))
    taps = FeatureTaps(unet, paths or vpd_default_taps(unet))
    store = AttentionStore()
    probe = probe_unet(unet, taps, store, _run(unet, taps, store), 32,
                       vae_factor=8, unet_factor=8, **kwargs)
    return unet, taps, probe, store


class CountingProcessor(AttnProcessor2_0):
    """A user's processor: SDPA attention that counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return super().__call__(*args, **kwargs)


def _maps(unet, taps, store):
    """Maps of one seeded forward (4 tokens) through the probed U-Net."""
    store.reset()
    gen = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 4, 16, 16, generator=gen)
    cond = torch.randn(1, 4, 32, generator=gen)
    with torch.no_grad():
        _run(unet, taps, store)(latents, cond)
    return store.maps((16, 16))


# the first self-attention, and a cross-attention at the latent's own
# resolution: a map candidate that attn_min_downsample=2 drops
SELF_ATTN = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor'
DROPPED = 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor'


def test_taps_channels_strides_and_unused_params():
    unet, taps, probe, _ = _probe()
    # vpd_default_taps: finest first (up_blocks.3, 2, 1, 0)
    assert taps.paths[0] == 'up_blocks.3'
    assert probe.tap_strides == [8, 16, 32, 64]
    assert probe.tap_channels == [32, 64, 64, 64]
    assert taps.stop_early  # the last tap to fire is a whole block
    assert probe.attn_layers == {} and probe.attn_downsamples == []
    # nothing after up_blocks.3 feeds a tap
    assert {n.split('.')[0] for n in probe.unused_params} == {
        'conv_norm_out', 'conv_out'}


def test_tap_inside_a_block_does_not_stop_early():
    _, taps, probe, _ = _probe(['up_blocks.1.attentions.1'])
    assert not taps.stop_early
    assert probe.tap_strides == [32]


def test_attention_layers_kept_by_resolution():
    unet, _, probe, _ = _probe(use_attn=True, attn_min_downsample=2)
    assert probe.attn_downsamples == [2, 4]
    assert all(name.endswith('attn2.processor') and
               name.startswith(('down_blocks.', 'up_blocks.'))
               for name in probe.attn_layers)
    kept = {type(p).__name__ for n, p in unet.attn_processors.items()
            if n in probe.attn_layers}
    assert kept == {'MapCollectingAttnProcessor'}


def test_other_layers_keep_their_processors():
    """Map processors go on the kept layers only: a user's processor on a
    self-attention layer and on a dropped map candidate survives the probe
    and runs in the forward; the maps are those of a U-Net without it."""
    custom = {SELF_ATTN: CountingProcessor(), DROPPED: CountingProcessor()}
    unet, taps, probe, store = _probe(custom=custom, use_attn=True)
    assert DROPPED not in probe.attn_layers and probe.attn_layers
    for name, proc in unet.attn_processors.items():
        if name in custom:
            assert proc is custom[name], name
        elif name not in probe.attn_layers:
            assert type(proc) is AttnProcessor2_0, name
    for proc in custom.values():
        proc.calls = 0
    maps = _maps(unet, taps, store)
    assert [p.calls for p in custom.values()] == [1, 1]
    ref_unet, ref_taps, ref_probe, ref_store = _probe(use_attn=True)
    assert ref_probe.attn_layers == probe.attn_layers
    ref = _maps(ref_unet, ref_taps, ref_store)
    assert sorted(maps) == sorted(ref) == [2, 4]
    assert all(torch.equal(maps[d], ref[d]) for d in ref)


def test_without_maps_no_processor_is_replaced():
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**tiny_unet_cfg())
    unet.set_attn_processor(dict(unet.attn_processors,
                                 **{DROPPED: CountingProcessor()}))
    before = unet.attn_processors
    taps = FeatureTaps(unet, vpd_default_taps(unet))
    store = AttentionStore()
    probe_unet(unet, taps, store, _run(unet, taps, store), 32, vae_factor=8,
               unet_factor=8, use_attn=False)
    after = unet.attn_processors
    assert after.keys() == before.keys()
    assert all(after[name] is before[name] for name in before)


def test_refuses_to_replace_a_custom_processor_on_a_map_layer():
    kept = 'down_blocks.1.attentions.0.transformer_blocks.0.attn2.processor'
    with pytest.raises(ValueError, match='own processors.*'
                       'CountingProcessor.*attn_places'):
        _probe(custom={kept: CountingProcessor()}, use_attn=True)


def test_graph_leaves():
    a, b, c = (nn.Parameter(torch.ones(2)) for _ in range(3))
    out = (a * 2 + b).sum()
    assert graph_leaves([out]) == {a, b}
    assert c not in graph_leaves([out])
