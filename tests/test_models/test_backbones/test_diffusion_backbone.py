"""The public extension API of DiffusionBackbone (its template forward)."""
import pytest
import torch

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.conditioning import Conditioner
from mmdiff.registry import MODELS
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.testing import demo_images


@MODELS.register_module(force=True)
class ThreeTokens(Conditioner):
    """A conditioner with its own tokens, reading the per-image metainfo
    the backbone is called with."""

    def __init__(self, dim, **kwargs):
        super().__init__(dim, **kwargs)
        self.tokens = torch.nn.Parameter(torch.randn(
            3, dim, generator=torch.Generator().manual_seed(0)))
        self.seen = None

    @property
    def num_tokens(self):
        return 3

    def forward(self, batch_size, class_ids=None, metainfo=None):
        self.seen = metainfo
        scale = torch.tensor([m['scale'] for m in metainfo])
        return self.tokens[None] * scale[:, None, None]


class Doubled(DiffusionBackbone):
    """A subclass with its own ``extract`` (and state set after the base
    ``__init__``, read by ``output_channels``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                         use_attn=True,
                         conditioner=dict(type='ThreeTokens'), **kwargs)
        self.calls = 0

    def output_channels(self):
        self.calls += 1
        return super().output_channels()

    def extract(self, latents, cond, out_hw):
        self.seen = (latents.shape, cond.shape, out_hw)
        return tuple(2 * f for f in super().extract(latents, cond, out_hw))


def test_conditioner_and_extract_extension_points(one_thread):
    torch.manual_seed(0)
    model = Doubled().eval()
    assert model.calls == 0  # feature info is computed on first use
    assert model.out_channels == (32, 64 + 3, 64 + 3, 64)
    assert model.calls == 1
    # the conditioner's parameters are the backbone's
    assert 'conditioner.tokens' in dict(model.named_parameters())
    images = demo_images(batch=2, size=(70, 90))
    metas = [dict(scale=1.0), dict(scale=-1.0)]
    with torch.no_grad():
        outs = model(images, metainfo=metas)
    assert model.calls == 1 and model.conditioner.seen == metas
    # extract sees clean latents of the padded image, the tokens, the size
    assert model.seen == ((2, 4, 16, 16), (2, 3, 32), (70, 90))
    for out, info in zip(outs, model.feature_info):
        stride = info['reduction']
        assert out.shape[1:] == (info['num_chs'], -(-70 // stride),
                                 -(-90 // stride))
    # the tokens reach the U-Net: negated tokens change the features
    assert not torch.allclose(outs[1][0], outs[1][1])


def test_single_token_maps_are_refused():
    with pytest.raises(ValueError, match='use_attn=True needs K >= 2'):
        DiffusionBackbone(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                          use_attn=True)


def test_building_blocks_compose_the_default_extract(one_thread):
    torch.manual_seed(0)
    model = DiffusionBackbone(unet_cfg=tiny_unet_cfg(),
                              vae_cfg=tiny_vae_cfg()).eval()
    images = demo_images(batch=1, size=64)
    with torch.no_grad():
        latents = model.encode(images)
        feats, maps = model.run_unet(model.add_noise(latents),
                                     model.condition(1))
        by_hand = model.tap_outputs(feats, maps, (64, 64))
        for a, b in zip(model(images), by_hand):
            assert torch.equal(a, b)
