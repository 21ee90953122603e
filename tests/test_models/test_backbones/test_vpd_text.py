"""VPD with class embeddings computed at build time from class names.

Reuses the tiny offline CLIP (tokenizer + 2-layer text model, width 32 like
the tiny U-Net's cross_attention_dim) of the class-embedding tests.
"""

import pytest
import torch

from mmdiff.models.backbones import VPD
from mmdiff.models.diffusion import tiny_sd_configs

pytest.importorskip('transformers')


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    from mmdiff.testing.clip import build_test_clip
    return build_test_clip(str(tmp_path_factory.mktemp('clip') / 'tiny-clip'))


@pytest.mark.parametrize('output', ['pooled', 'tokens'])
def test_class_names_built_and_cached(clip_dir, tmp_path, output):
    from mmdiff.models.text import get_or_build_class_embeddings
    spec = dict(class_names=['cat', 'dog', 'tree'], text_encoder=clip_dir,
                templates=['a photo of a {}.'], output=output,
                cache_dir=str(tmp_path), max_length=8)
    unet_cfg, vae_cfg = tiny_sd_configs()
    model = VPD(unet_cfg=unet_cfg, vae_cfg=vae_cfg, class_embeddings=spec,
                local_files_only=True)
    expected = get_or_build_class_embeddings(local_files_only=True, **spec)
    assert torch.allclose(model.conditioner.class_embeddings, expected)
    assert not model.conditioner.class_embeddings.requires_grad  # a buffer
    assert model.out_channels == (32, 67, 67, 64)
    tokens = 3 if output == 'pooled' else 3 * 8
    assert model.condition(2).shape == (2, tokens, 32)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [o.shape[1] for o in outs] == list(model.out_channels)
