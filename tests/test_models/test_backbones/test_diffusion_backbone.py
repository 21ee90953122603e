"""The public extension API of DiffusionBackbone (its template forward)."""
import torch

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
from mmdiff.testing import demo_images


class ThreeTokens(DiffusionBackbone):
    """A subclass whose token count lives in state set after the base
    ``__init__`` (no ``getattr`` work-around), with its own ``extract``."""

    def __init__(self, **kwargs) -> None:
        self.calls = 0
        super().__init__(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                         use_attn=True, **kwargs)
        self.tokens = torch.randn(3, self.cross_attention_dim,
                                  generator=torch.Generator().manual_seed(0))

    @property
    def num_tokens(self) -> int:
        return self.tokens.shape[0]

    def output_channels(self):
        self.calls += 1
        return super().output_channels()

    def condition(self, batch_size, class_ids=None):
        return self.tokens[None].expand(batch_size, -1, -1)

    def extract(self, latents, cond, out_hw):
        self.seen = (latents.shape, cond.shape, out_hw)
        return tuple(2 * f for f in super().extract(latents, cond, out_hw))


def test_feature_info_once_after_subclass_setup(one_thread):
    torch.manual_seed(0)
    model = ThreeTokens().eval()
    assert model.calls == 1  # by finish_build, after ThreeTokens.__init__
    assert model.out_channels == (32, 64 + 3, 64 + 3, 64)
    images = demo_images(batch=2, size=(70, 90))
    with torch.no_grad():
        outs = model(images)
    assert model.calls == 1
    # extract sees clean latents of the padded image, the tokens, the size
    assert model.seen == ((2, 4, 16, 16), (2, 3, 32), (70, 90))
    for out, info in zip(outs, model.feature_info):
        stride = info['reduction']
        assert out.shape[1:] == (info['num_chs'], -(-70 // stride),
                                 -(-90 // stride))


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
