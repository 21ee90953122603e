"""mmdiff.models.diffusion.probe: one build-time forward of a tiny U-Net."""
import torch
from diffusers import UNet2DConditionModel
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


def _probe(paths=None, **kwargs):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**tiny_unet_cfg())
    taps = FeatureTaps(unet, paths or vpd_default_taps(unet))
    store = AttentionStore()
    probe = probe_unet(unet, taps, store, _run(unet, taps, store), 32,
                       vae_factor=8, unet_factor=8, **kwargs)
    return unet, taps, probe


def test_taps_channels_strides_and_unused_params():
    unet, taps, probe = _probe()
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
    _, taps, probe = _probe(['up_blocks.1.attentions.1'])
    assert not taps.stop_early
    assert probe.tap_strides == [32]


def test_attention_layers_kept_by_resolution():
    unet, _, probe = _probe(use_attn=True, attn_min_downsample=2)
    assert probe.attn_downsamples == [2, 4]
    assert all(name.endswith('attn2.processor') and
               name.startswith(('down_blocks.', 'up_blocks.'))
               for name in probe.attn_layers)
    kept = {type(p).__name__ for n, p in unet.attn_processors.items()
            if n in probe.attn_layers}
    assert kept == {'MapCollectingAttnProcessor'}


def test_graph_leaves():
    a, b, c = (nn.Parameter(torch.ones(2)) for _ in range(3))
    out = (a * 2 + b).sum()
    assert graph_leaves([out]) == {a, b}
    assert c not in graph_leaves([out])
