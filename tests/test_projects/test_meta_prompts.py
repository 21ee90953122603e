"""projects/MetaPrompts: learned prompts, learned timestep embedding,
recurrent refinement, prompt re-weighting."""
import os.path as osp

import pytest
import torch

from mmdiff.models.diffusion import tiny_sd_configs

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'projects', 'MetaPrompts', 'configs')
DEMO = osp.join(CONFIGS, 'meta-prompts_vpd_tiny-fpn_demo-seg.py')


def _build(**kwargs):
    from projects.MetaPrompts.meta_prompts import MetaPromptsVPD
    unet, vae = tiny_sd_configs()
    torch.manual_seed(0)
    return MetaPromptsVPD(unet_cfg=unet, vae_cfg=vae, **kwargs)


def _images(batch=2, size=70):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(batch, 3, size, size, generator=gen) * 2 - 1


def test_loops_prompts_and_gradients():
    model = _build(num_prompts=8, num_loops=3)
    assert model.conditioner.meta_prompts.shape == (8, 32)
    from projects.MetaPrompts.meta_prompts import MetaPrompts
    assert type(model.conditioner) is MetaPrompts  # prompts, not classes
    inputs = []
    model.unet.register_forward_pre_hook(
        lambda m, a, kw: inputs.append((a[0], kw['encoder_hidden_states'])),
        with_kwargs=True)
    outs = model(_images())
    assert len(inputs) == 3  # one U-Net pass per loop
    assert all(c.shape == (2, 8, 32) for _, c in inputs)
    assert [o.shape[1] for o in outs] == list(model.out_channels)
    assert model.out_channels == tuple(model.tap_channels)  # no maps
    sum(o.sum() for o in outs).backward()
    for name in ('conditioner.meta_prompts', 'time_delta',
                 'refine_proj.weight', 'reweight.0.gamma'):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.any(), name


def test_zero_init_starts_as_single_pass_vpd():
    """At init the loops, time deltas and re-weighting are identities, so
    the features equal one VPD pass conditioned on the same prompts."""
    from mmdiff.models.backbones import VPD
    model = _build(num_prompts=4, num_loops=2).eval()
    unet, vae = tiny_sd_configs()
    vpd = VPD(unet_cfg=unet, vae_cfg=vae, text_adapter=False,
              class_embeddings=model.conditioner.meta_prompts.detach().clone(),
              use_attn=False).eval()
    vpd.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        for a, b in zip(model(_images()), vpd(_images())):
            assert torch.allclose(a, b, atol=1e-5)
        # once trained, the learned timestep and the loop change features
        model.time_delta.add_(1.0)
        model.refine_proj.bias.add_(0.5)
        model.reweight[0].gamma.add_(1.0)
        changed = model(_images())
    assert not torch.allclose(changed[0], vpd(_images())[0])


def test_options_and_errors():
    single = _build(num_prompts=4, num_loops=1, learned_timestep=False,
                    reweight=False)
    assert not hasattr(single, 'refine_proj')
    assert single.time_delta is None and single.reweight is None
    with pytest.raises(TypeError, match='class_embeddings'):
        _build(class_embeddings=dict(num_classes=3))
    with pytest.raises(TypeError, match='drop conditioner'):
        _build(conditioner=dict(type='NullPrompt'))
    with pytest.raises(ValueError, match='num_loops'):
        _build(num_loops=0)


def test_demo_builds_and_forwards(build_from_config):
    cfg, model = build_from_config(DEMO)
    assert type(model.backbone).__name__ == 'MetaPromptsVPD'
    assert list(cfg.model.neck.in_channels) == list(
        model.backbone.out_channels)
    with torch.no_grad():
        feats = model.extract_feat(_images(1, 96))
    assert len(feats) == 4


def test_demo_trains_and_tests(train_test, tmp_path):
    log, metrics = train_test(DEMO, str(tmp_path))
    assert 'Iter(train) [4/4]' in log
    assert {'mIoU', 'aAcc'} <= set(metrics)
