"""projects/MetaPrompts: the lighter MetaPromptsVPD (learned prompts,
timestep delta, z0-based refinement, prompt re-weighting) and the source's
model, MetaPromptsBackbone (its parts here; its equivalence with the source:
tests/test_converters/zoo/test_zoo_meta_prompts.py)."""
import os.path as osp

import pytest
import torch

from mmdiff.testing import demo_images, tiny_sd_model
from projects.MetaPrompts.meta_prompts import MetaPromptsVPD

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'projects', 'MetaPrompts', 'configs')
DEMO = osp.join(CONFIGS, 'meta-prompts_vpd_tiny-fpn_demo-seg.py')


def test_loops_prompts_and_gradients():
    model = tiny_sd_model(MetaPromptsVPD, num_prompts=8, num_loops=3)
    assert model.conditioner.meta_prompts.shape == (8, 32)
    from projects.MetaPrompts.meta_prompts import MetaPrompts
    assert type(model.conditioner) is MetaPrompts  # prompts, not classes
    inputs = []
    model.unet.register_forward_pre_hook(
        lambda m, a, kw: inputs.append((a[0], kw['encoder_hidden_states'])),
        with_kwargs=True)
    outs = model(demo_images(2, 70))
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
    model = tiny_sd_model(MetaPromptsVPD, num_prompts=4, num_loops=2).eval()
    vpd = tiny_sd_model(
        VPD, text_adapter=False, use_attn=False,
        class_embeddings=model.conditioner.meta_prompts.detach().clone()
    ).eval()
    vpd.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        for a, b in zip(model(demo_images(2, 70)), vpd(demo_images(2, 70))):
            assert torch.allclose(a, b, atol=1e-5)
        # once trained, the learned timestep and the loop change features
        model.time_delta.add_(1.0)
        model.refine_proj.bias.add_(0.5)
        model.reweight[0].gamma.add_(1.0)
        changed = model(demo_images(2, 70))
    assert not torch.allclose(changed[0], vpd(demo_images(2, 70))[0])


def test_options_and_errors():
    single = tiny_sd_model(MetaPromptsVPD, num_prompts=4, num_loops=1,
                           learned_timestep=False, reweight=False)
    assert not hasattr(single, 'refine_proj')
    assert single.time_delta is None and single.reweight is None
    with pytest.raises(TypeError, match='class_embeddings'):
        tiny_sd_model(MetaPromptsVPD, class_embeddings=dict(num_classes=3))
    with pytest.raises(TypeError, match='drop conditioner'):
        tiny_sd_model(MetaPromptsVPD, conditioner=dict(type='NullPrompt'))
    with pytest.raises(ValueError, match='num_loops'):
        tiny_sd_model(MetaPromptsVPD, num_loops=0)


def test_demo_builds_and_forwards(build_from_config):
    cfg, model = build_from_config(DEMO)
    assert type(model.backbone).__name__ == 'MetaPromptsVPD'
    assert list(cfg.model.neck.in_channels) == list(
        model.backbone.out_channels)
    with torch.no_grad():
        feats = model.extract_feat(demo_images(1, 96))
    assert len(feats) == 4


def test_demo_trains_and_tests(train_test, tmp_path):
    log, metrics = train_test(DEMO, str(tmp_path))
    assert 'Iter(train) [4/4]' in log
    assert {'mIoU', 'aAcc'} <= set(metrics)


# --------------------------------------------------------------------------
# MetaPromptsBackbone: the source's model (the equivalence with the source
# itself: tests/test_converters/zoo/test_zoo_meta_prompts.py)
# --------------------------------------------------------------------------
DEPTH = dict(share_prompts=False, prompt_adapter=True, prompt_head='depth',
             deconv_filters=16, delete_time_embed=True, resize_scale=1)
DEMO_NYU = osp.join(CONFIGS, 'meta-prompts_tiny_demo-nyu.py')
DEMO_SEG_SOURCE = osp.join(CONFIGS, 'meta-prompts_tiny-upernet_demo-seg.py')


def _source_model(**kwargs):
    from projects.MetaPrompts.meta_prompts import MetaPromptsBackbone
    return tiny_sd_model(MetaPromptsBackbone, **kwargs)


def test_refinement_feeds_the_unet_output_back():
    """Step k+1's U-Net input is the U-Net's own output (conv_norm_out +
    SiLU + conv_out) of step k, its time embedding step k's free vector,
    its context step k's prompts (through step k's adapter)."""
    model = _source_model(num_prompts=4, refine_steps=3, **DEPTH).eval()
    calls, temb = [], []
    model.unet.register_forward_pre_hook(
        lambda m, a, kw: calls.append((a[0].clone(),
                                       kw['encoder_hidden_states'])),
        with_kwargs=True)
    model.unet.time_embedding.register_forward_hook(
        lambda m, a, out: temb.append(out))
    with torch.no_grad():
        outs = model(demo_images(2, 64))
    assert len(calls) == 3 and len(temb) == 3
    inputs, embs = list(calls), list(temb)  # the checks below add more
    for step, (latents, context) in enumerate(inputs):
        assert torch.equal(embs[step], model.timesteps[step].expand(2, -1))
        prompts = model.adapters[step](model.prompts[step])
        assert torch.allclose(context, prompts.expand(2, -1, -1))
        if step == 0:
            continue
        model._step = step - 1  # the whole U-Net, as the previous step
        with torch.no_grad():
            full = model.unet(inputs[step - 1][0], 1,
                              encoder_hidden_states=inputs[step - 1][1],
                              return_dict=False)[0]
        model._step = 0
        assert torch.allclose(latents, full, atol=1e-6)
    assert [o.shape for o in outs] == [(2, 4, 8, 8)]  # stride 8 of 64


def test_trainable_parts_and_feature_info():
    seg = _source_model(num_prompts=5, refine_steps=2)
    assert [(i['num_chs'], i['reduction']) for i in seg.feature_info] == \
        [(5, 4), (5, 8), (5, 16), (5, 32)]
    assert seg.prompts[0].shape == (5, 32) and len(seg.prompts) == 1
    assert seg.timesteps[0].shape == (1, 128)  # 4 x model_channels
    outs = seg(demo_images(2, 64))
    assert [o.shape[1:] for o in outs] == [
        (5, 64 // s, 64 // s) for s in (4, 8, 16, 32)]
    sum(o.square().mean() for o in outs).backward()
    for name in ('prompts.0', 'timesteps.0', 'timesteps.1',
                 'unet.conv_out.weight', 'unet.conv_norm_out.weight',
                 'prompt_head.upconvs.3.0.weight'):
        grad = seg.get_parameter(name).grad
        assert grad is not None and grad.any(), name
    frozen = {n for n, p in seg.named_parameters() if not p.requires_grad}
    assert {n for n in frozen if not n.startswith('vae.')} == {
        f'unet.time_embedding.{n}' for n in (
            'linear_1.weight', 'linear_1.bias', 'linear_2.weight',
            'linear_2.bias')}  # kept as in the source, never reached
    single = _source_model(num_prompts=5, refine_steps=1)
    assert not single.unet.conv_out.weight.requires_grad  # never run
    depth = _source_model(num_prompts=6, refine_steps=2, **DEPTH)
    assert not any(k.startswith('unet.time_embedding.')
                   for k in depth.state_dict())
    assert len(depth.prompts) == len(depth.adapters) == 2
    # resize 70 -> 128 (70 // 64 + 1 = 2 multiples), map back to 70 // 8
    assert depth(demo_images(1, 70))[0].shape == (1, 6, 8, 8)


def test_source_model_errors():
    with pytest.raises(ValueError, match='refine_steps'):
        _source_model(refine_steps=0)
    with pytest.raises(ValueError, match='prompt_head'):
        _source_model(prompt_head='panoptic')
    with pytest.raises(ValueError, match='use_attn=False'):
        _source_model(use_attn=True)
    with pytest.raises(ValueError, match='first tap'):
        _source_model(taps=['up_blocks.2', 'up_blocks.3'])
    with pytest.raises(ValueError, match='drop conditioner'):
        _source_model(conditioner=dict(type='mmdiff.NullPrompt'))


def test_ldm_optimizer_rule():
    """U-Net x0.01, no decay on 1-D parameters and biases; the source's
    layer_decay_rate is accepted and never read."""
    from mmengine.optim import build_optim_wrapper
    model = _source_model(num_prompts=4, refine_steps=2)
    cfg = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1),
               constructor='LDMOptimWrapperConstructor',
               paramwise_cfg=dict(layer_decay_rate=0.9))
    wrapper = build_optim_wrapper(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    rule = {}
    for group in wrapper.optimizer.param_groups:
        for p in group['params']:
            rule[names[id(p)]] = (group['lr'], group['weight_decay'])
    assert rule['unet.conv_out.weight'] == (1e-5, 0.1)
    assert rule['unet.conv_out.bias'] == (1e-5, 0.)
    assert rule['unet.conv_norm_out.weight'] == (1e-5, 0.)  # 1-D
    assert rule['timesteps.0'] == (1e-3, 0.1)  # (1, 1280): 2-D
    assert rule['prompt_head.upconvs.0.1.weight'] == (1e-3, 0.)
    assert not any(n.startswith('vae.') for n in rule)  # frozen
    with pytest.raises(ValueError, match='custom_keys'):
        build_optim_wrapper(model, dict(cfg, paramwise_cfg=dict(
            custom_keys={'unet': dict(lr_mult=0.1)})))


def test_converter_refuses_other_checkpoints(load_tool, tmp_path, capsys):
    """A VPD checkpoint, or a refinement `out` that is not the U-Net's:
    a clear error and no output file; vpd_to_mmdiff.py on a Meta Prompts
    checkpoint names this converter."""
    tool = load_tool('tools/model_converters/meta_prompts_to_mmdiff.py')
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save({'state_dict': {'unet.unet.diffusion_model.out.2.bias':
                               torch.zeros(4)}}, src)
    assert tool.main([str(src), str(dst)]) == 1
    assert 'Not a Meta Prompts checkpoint' in capsys.readouterr().err
    out = 'unet.unet.diffusion_model.out.2.bias'
    torch.save({'state_dict': {
        'meta_prompts': torch.zeros(3, 8), 't1': torch.zeros(1, 32),
        't2': torch.zeros(1, 32), out: torch.zeros(4),
        'cross_unet_conv2.2.bias': torch.ones(4)}}, src)
    assert tool.main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert 'cross_unet_conv2.2.bias differs from ' + out in err
    assert not dst.exists()
    # the VPD converter points to this one
    vpd_tool = load_tool('tools/model_converters/vpd_to_mmdiff.py')
    assert vpd_tool.main([str(src), str(dst)]) == 1
    assert 'meta_prompts_to_mmdiff.py' in capsys.readouterr().err
    assert not dst.exists()


def test_source_seg_demo_builds_and_trains_a_step(build_from_config):
    """The faithful seg demo: UPerHead + FCN aux + CE/Lovasz losses."""
    cfg, model = build_from_config(DEMO_SEG_SOURCE)
    assert type(model.backbone).__name__ == 'MetaPromptsBackbone'
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample(gt_sem_seg=PixelData(data=torch.randint(
            0, 4, (1, 64, 64), generator=gen)))
        s.set_metainfo(dict(img_shape=(64, 64), pad_shape=(64, 64),
                            ori_shape=(64, 64)))
        samples.append(s)
    model.train()
    feats = model.extract_feat(demo_images(2, 64))
    losses = model.decode_head.loss(feats, samples, model.train_cfg)
    losses.update(model.auxiliary_head.loss(feats, samples, model.train_cfg))
    assert {'loss_ce', 'loss_lovasz', 'loss_ce_aux'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.timesteps[1].grad.any()


def test_source_depth_demo_trains_and_predicts(build_from_config):
    """The faithful depth demo: a train_step through the config's optimizer
    wrapper (the LDM rule) and SiLog loss, then a test_step at full size
    (resize to the next multiple of 64 and back)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg, model = build_from_config(DEMO_NYU)
    assert type(model.backbone).__name__ == 'MetaPromptsBackbone'
    gen = torch.Generator().manual_seed(0)

    def batch(size):
        inputs, samples = [], []
        for _ in range(2):
            inputs.append(torch.randint(0, 256, (3, size, size),
                                        generator=gen, dtype=torch.uint8))
            s = SegDataSample(gt_depth_map=PixelData(
                data=torch.rand(1, size, size, generator=gen) * 5 + 1))
            s.set_metainfo(dict(img_shape=(size, size), ori_shape=(size,
                                                                   size)))
            samples.append(s)
        return dict(inputs=inputs, data_samples=samples)

    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {g['lr'] for g in wrapper.optimizer.param_groups}
    assert lrs == {5e-4, 5e-6}  # U-Net x0.01
    before = model.backbone.timesteps[0].detach().clone()
    model.train()
    losses = model.train_step(batch(64), wrapper)
    assert losses['decode.loss_silog'] > 0
    assert not torch.equal(before, model.backbone.timesteps[0])
    model.eval()
    with torch.no_grad():
        preds = model.test_step(batch(72))
    assert preds[0].pred_depth_map.data.shape == (1, 72, 72)
