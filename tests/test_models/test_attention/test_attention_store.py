"""The attention store and the map-collecting processor on one layer."""
import pytest
import torch

from mmdiff.models.attention import AttentionStore, attention_probs


def test_store_averages_layers_per_resolution():
    store = AttentionStore(detach=True)
    a, b = torch.rand(2, 16, 3), torch.rand(2, 16, 3)
    c = torch.rand(2, 4, 3, requires_grad=True)
    store.add('ignored', a)  # idle store records nothing
    assert store.maps((4, 4)) == {}
    store.active = True
    for name, probs in (('l1', a), ('l2', b), ('l3', c)):
        store.add(name, probs)
    maps = store.maps((4, 4))
    assert sorted(maps) == [1, 2]
    assert torch.allclose(maps[1], ((a + b) / 2).transpose(1, 2).reshape(
        2, 3, 4, 4))
    assert torch.equal(maps[2], c.detach().transpose(1, 2).reshape(
        2, 3, 2, 2))
    assert not maps[2].requires_grad
    assert store.layer_tokens == {'l1': 16, 'l2': 16, 'l3': 4}
    store.reset()
    assert store.maps((4, 4)) == {}


def test_store_keeps_gradients_when_asked():
    store = AttentionStore(detach=False)
    store.active = True
    probs = torch.rand(1, 4, 2, requires_grad=True)
    store.add('l', probs)
    store.maps((2, 2))[1].sum().backward()
    assert probs.grad is not None


def test_attention_probs_is_explicit_softmax():
    from diffusers.models.attention_processor import Attention
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=8, heads=2,
                     dim_head=8)
    x, ctx = torch.randn(3, 10, 16), torch.randn(3, 5, 8)
    q = attn.to_q(x).view(3, 10, 2, 8).transpose(1, 2)
    k = attn.to_k(ctx).view(3, 5, 2, 8).transpose(1, 2)
    ref = (q @ k.transpose(-1, -2) / 8**0.5).softmax(-1).mean(1)
    assert torch.allclose(attention_probs(attn, x, ctx), ref, atol=1e-6)


def test_unknown_place_is_rejected():
    from diffusers import UNet2DConditionModel

    from mmdiff.models.attention import cross_attention_layers
    from mmdiff.models.diffusion import tiny_unet_cfg
    unet = UNet2DConditionModel(**tiny_unet_cfg())
    assert len(cross_attention_layers(unet, ['mid'])) == 1
    with pytest.raises(ValueError, match='choose from'):
        cross_attention_layers(unet, ['middle'])
