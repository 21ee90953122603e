"""mmdiff.models.backbones.inputs: argument checks, padding, cropping."""
import pytest
import torch

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.backbones.inputs import as_pad_shape, crop, pad_images


def test_pad_to_multiple_and_crop_back():
    images = torch.ones(1, 3, 70, 100)
    padded, out_hw = pad_images(images, 64, pad_val=-1.)
    assert padded.shape[-2:] == (128, 128) and out_hw == (70, 100)
    assert padded[..., 70:, :].eq(-1).all() and padded[..., :70, :100].eq(
        1).all()
    feat = torch.zeros(1, 4, 16, 16)  # stride 8 of the padded image
    assert crop(feat, 8, out_hw).shape[-2:] == (9, 13)  # ceil(70/8), ...


def test_pad_shape_is_a_minimum():
    padded, out_hw = pad_images(torch.zeros(1, 3, 480, 600), 64,
                                as_pad_shape(512))
    assert out_hw == (512, 600) and padded.shape[-2:] == (512, 640)
    assert as_pad_shape(None) is None and as_pad_shape([4, 8]) == (4, 8)


@pytest.mark.parametrize('kwargs, match', [
    (dict(latent_mode='mean'), r"latent_mode must be one of \['mode'"),
    (dict(amp_dtype='fp16'), r'amp_dtype must be one of \[None'),
    (dict(noise='gaussian'), "noise must be 'none', 'seeded'"),
])
def test_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):  # before building anything
        DiffusionBackbone(unet_cfg=None, vae_cfg=None, **kwargs)
