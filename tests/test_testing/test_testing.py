"""mmdiff.testing: the shared tiny models, images and tiny CLIP."""
import torch

from mmdiff.testing import build_tiny_clip, demo_images, tiny_vpd


def test_demo_images_seeded_in_range():
    images = demo_images(batch=3, size=32, seed=5)
    assert images.shape == (3, 3, 32, 32)
    assert images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, demo_images(3, 32, 5))
    assert not torch.equal(images, demo_images(3, 32, 6))


def test_tiny_vpd_is_seeded(one_thread):
    a, b = tiny_vpd(), tiny_vpd()
    assert a.out_channels == (32, 64 + 4, 64 + 4, 64)
    for (name, x), (_, y) in zip(a.state_dict().items(),
                                 b.state_dict().items()):
        assert torch.equal(x, y), name


def test_tiny_clip_loads_offline(tmp_path):
    import transformers
    folder = build_tiny_clip(str(tmp_path / 'clip'), dim=16)
    tok = transformers.CLIPTokenizer.from_pretrained(folder)
    model = transformers.CLIPTextModel.from_pretrained(folder)
    ids = tok(['a cat'], return_tensors='pt').input_ids
    assert model(input_ids=ids).last_hidden_state.shape[-1] == 16
    assert not (tmp_path / 'clip_src').exists()
