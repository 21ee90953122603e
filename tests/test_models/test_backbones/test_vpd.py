"""mmdiff.VPD behaviour on tiny random SD-shaped components."""
import copy

import pytest
import torch

from mmdiff.models.backbones import VPD, DiffusionBackbone
from mmdiff.models.diffusion import tiny_sd_configs
from mmdiff.testing import demo_images, tiny_vpd

K = 4


def build(**kwargs):
    return tiny_vpd(num_classes=K, **kwargs)


@pytest.fixture(scope='module')
def vpd():
    return build()


def images(size=(64, 64), batch=2, seed=0):
    return demo_images(batch, size, seed)


@pytest.mark.parametrize('size', [(64, 64), (70, 90), (33, 127), (128, 64)])
def test_shapes_match_feature_info(vpd, size):
    with torch.no_grad():
        outs = vpd.eval()(images(size))
    assert isinstance(outs, tuple) and len(outs) == len(vpd.feature_info)
    for out, info, chans in zip(outs, vpd.feature_info, vpd.out_channels):
        stride = info['reduction']
        assert info['num_chs'] == chans == out.shape[1]
        assert out.shape[-2:] == (-(-size[0] // stride),
                                  -(-size[1] // stride))


def test_pad_shape_keeps_padded_maps_like_mmseg(vpd):
    padded = build(pad_shape=(96, 128)).eval()
    x = images((70, 90))
    manual = torch.nn.functional.pad(x, (0, 128 - 90, 0, 96 - 70))
    with torch.no_grad():
        outs, ref = padded(x), vpd.eval()(manual)
    assert [o.shape[-2:] for o in outs] == [(12, 16), (6, 8), (3, 4), (2, 2)]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(outs, ref))


def test_default_layout_is_vpd(vpd):
    # ldm output blocks 1, 4, 7, final; finest first; maps at 1/16, 1/32
    assert vpd.tap_paths == [
        'up_blocks.3', 'up_blocks.2.attentions.1',
        'up_blocks.1.attentions.1', 'up_blocks.0.resnets.1'
    ]
    assert [i['reduction'] for i in vpd.feature_info] == [8, 16, 32, 64]
    assert vpd.out_channels == (32, 64 + K, 64 + K, 64)
    # maps only on down/up attn2 layers at latent/2 and latent/4
    assert vpd.attn_downsamples == [2, 4]
    assert all(n.endswith('attn2.processor') and not n.startswith('mid')
               for n in vpd.attn_layers)
    assert len(vpd.attn_layers) == 10  # 2 down + 3 up per resolution


def test_map_processors_only_on_selected_layers(vpd):
    from diffusers.models.attention_processor import AttnProcessor2_0

    from mmdiff.models.attention import MapCollectingAttnProcessor
    for name, proc in vpd.unet.attn_processors.items():
        if name in vpd.attn_layers:
            assert isinstance(proc, MapCollectingAttnProcessor)
        else:
            assert type(proc) is AttnProcessor2_0


def test_processors_installed_before_the_probe_survive_and_run(vpd):
    """A subclass installs its own attention processors right after the
    U-Net is built (an IP-Adapter-style extension): on a self-attention
    layer and on a cross-attention layer whose maps are dropped (latent/1).
    The build keeps them, the forward runs them, and the features and maps
    equal a plain VPD's."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg

    class Counting(AttnProcessor2_0):
        calls = 0

        def __call__(self, *args, **kwargs):
            self.calls += 1
            return super().__call__(*args, **kwargs)

    block = 'down_blocks.0.attentions.0.transformer_blocks.0.'
    custom = {block + 'attn1.processor': Counting(),
              block + 'attn2.processor': Counting()}

    class WithProcessors(VPD):
        def build_sd(self, *args, **kwargs):
            super().build_sd(*args, **kwargs)
            self.unet.set_attn_processor(
                dict(self.unet.attn_processors, **custom))

    torch.manual_seed(0)  # the weights of the vpd fixture (tiny_vpd)
    model = WithProcessors(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                           class_embeddings=dict(num_classes=K, dim=32))
    assert model.attn_layers == vpd.attn_layers
    assert not set(custom) & set(model.attn_layers)
    procs = model.unet.attn_processors
    assert all(procs[name] is proc for name, proc in custom.items())
    for proc in custom.values():
        proc.calls = 0
    with torch.no_grad():
        outs, ref = model.eval()(images()), vpd.eval()(images())
    assert [proc.calls for proc in custom.values()] == [1, 1]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(outs, ref))


def test_maps_are_probabilities_and_padding_is_cropped(vpd):
    with torch.no_grad():
        outs = vpd.eval()(images((70, 90)))
    for out, chans in zip(outs, vpd.tap_channels):
        if out.shape[1] > chans:
            maps = out[:, chans:]
            assert torch.allclose(maps.sum(1), torch.ones_like(maps[:, 0]),
                                  atol=1e-5)
            assert maps.min() >= 0


def test_skips_compute_after_last_tap(vpd):
    called = []
    handle = vpd.unet.conv_out.register_forward_hook(
        lambda *a: called.append(1))
    with torch.no_grad():
        vpd(images())
    handle.remove()
    assert not called


def test_custom_taps_and_plain_diffusion_backbone():
    unet_cfg, vae_cfg = tiny_sd_configs()
    model = DiffusionBackbone(
        unet_cfg=unet_cfg, vae_cfg=vae_cfg,
        taps=['down_blocks.1', 'mid_block', 'up_blocks.2'])
    assert [i['reduction'] for i in model.feature_info] == [32, 64, 8]
    outs = model(images())
    assert [o.shape[1] for o in outs] == [64, 64, 64]
    with pytest.raises(ValueError, match='not a module of the U-Net'):
        DiffusionBackbone(unet_cfg=unet_cfg, vae_cfg=vae_cfg,
                          taps=['up_blocks.9'])


def test_defaults_are_vpd_latents_timestep_no_noise(vpd):
    x = images()
    with torch.no_grad():
        dist = vpd.vae.encode(x).latent_dist
        assert torch.equal(vpd.encode(x), dist.mode())
        # deterministic: no noise, fixed timestep
        a, b = vpd(x), vpd(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert vpd.timestep == 1 and not vpd.scale_latents


def test_latent_scaling_and_noise_policies():
    x = images()
    base = build(use_attn=False)
    scaled = build(use_attn=False, scale_latents=True)
    with torch.no_grad():
        ratio = scaled.encode(x) / base.encode(x)
    assert torch.allclose(ratio, torch.full_like(
        ratio, base.vae.config.scaling_factor), rtol=1e-4)
    sampled = build(use_attn=False, latent_mode='sample')
    with torch.no_grad():
        diff = sampled.encode(x) - base.encode(x)
    assert diff.abs().max() > 0  # a posterior sample, not its mode
    seeded = build(use_attn=False, noise='seeded', noise_seed=3)
    rand = build(use_attn=False, noise='random')
    with torch.no_grad():
        assert torch.equal(seeded(x)[0], seeded(x)[0])
        assert not torch.equal(seeded(x)[0], base(x)[0])
        assert not torch.equal(rand(x)[0], rand(x)[0])


def test_gradients_through_maps_only_with_attn_grad():
    x = images()
    for attn_grad in (False, True):
        model = build(attn_grad=attn_grad, freeze_unet=True).train()
        outs = model(x)
        maps = outs[1][:, model.tap_channels[1]:]
        params = [model.conditioner.text_adapter.gamma,
                  model.conditioner.class_embeddings]
        grads = torch.autograd.grad(maps.square().sum(), params,
                                    allow_unused=True, retain_graph=True)
        flows = [g is not None and g.abs().sum().item() > 0 for g in grads]
        assert flows == [attn_grad, attn_grad]
        if attn_grad:
            maps.square().sum().backward()
            assert all(p.grad is None for p in model.unet.parameters())
            assert all(p.grad is None for p in model.vae.parameters())


def test_vae_never_and_frozen_unet_never_gets_gradients():
    for freeze in (False, True):
        model = build(freeze_unet=freeze)
        model.train()  # must not unfreeze anything
        assert not model.vae.training
        assert model.unet.training != freeze
        assert not any(p.requires_grad for p in model.vae.parameters())
        assert all(p.requires_grad != freeze
                   for n, p in model.unet.named_parameters()
                   if n not in model.unused_unet_params)
        sum(o.sum() for o in model(images())).backward()
        assert all(p.grad is None for p in model.vae.parameters())
        unet_grads = [p.grad is not None for p in model.unet.parameters()]
        assert (not any(unet_grads)) if freeze else any(unet_grads)
        assert model.conditioner.text_adapter.gamma.grad is not None


def test_gradient_checkpointing_matches():
    x = images()
    plain = build(attn_grad=True).train()
    ckpt = build(attn_grad=True, grad_checkpointing=True).train()
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.unet.is_gradient_checkpointing
    for model in (plain, ckpt):
        sum(o.square().sum() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_autocast_bf16_forward_backward(vpd):
    model = copy.deepcopy(vpd).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(images())
        loss = sum(o.float().mean() for o in outs)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.conditioner.text_adapter.gamma.grad is not None


def test_deepcopy_keeps_hooks_and_maps_on_the_copy(vpd):
    clone = copy.deepcopy(vpd).eval()
    with torch.no_grad():
        ref = vpd.eval()(images())
        out = clone(images())
    assert all(torch.allclose(a, b) for a, b in zip(ref, out))


def test_class_embed_select_uses_ids_and_mean_row():
    model = build(class_embed_select=True, use_attn=False).eval()
    assert model.num_tokens == 1
    emb = model.conditioner.class_embeddings
    cond = model.condition(3, torch.tensor([2, -1, 0]))
    adapter = model.conditioner.text_adapter
    assert cond.shape == (3, 1, emb.shape[1])
    assert torch.allclose(cond[0, 0], adapter(emb[2]))
    assert torch.allclose(cond[1, 0], adapter(emb.mean(0)))
    # depth hosts call backbone(inputs): every image gets the mean row
    assert torch.allclose(model.condition(2)[:, 0],
                          adapter(emb.mean(0)).expand(2, -1))
    x = images()
    with torch.no_grad():
        assert not torch.equal(model(x, torch.tensor([0, 1]))[0],
                               model(x)[0])
    with pytest.raises(ValueError, match='out of range'):
        model.condition(1, torch.tensor([K]))


def test_all_classes_condition_every_image(vpd):
    cond = vpd.condition(2)
    expected = vpd.conditioner.text_adapter(vpd.conditioner.class_embeddings)
    assert cond.shape == (2, K, 32)
    assert torch.allclose(cond[1], expected)


def test_token_embeddings_and_null_prompt():
    tokens = torch.randn(3, 5, 32)  # (K, L, D) from output='tokens'
    model = build(class_embeddings=tokens)
    assert model.condition(2).shape == (2, 15, 32)
    assert model.out_channels == (32, 67, 67, 64)  # maps summed per class
    with torch.no_grad():
        outs = model(images())
    maps = outs[1][:, 64:]
    assert torch.allclose(maps.sum(1), torch.ones_like(maps[:, 0]),
                          atol=1e-5)
    null = build(class_embeddings=None, use_attn=False)
    assert null.condition(2).shape == (2, 1, 32)
    assert null.out_channels == (32, 64, 64, 64)
    null(images())


def test_no_adapter():
    model = build(text_adapter=False)
    assert model.conditioner.text_adapter is None
    assert torch.equal(model.condition(1)[0],
                       model.conditioner.class_embeddings)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_class_embeddings_from_file(tmp_path, suffix):
    emb = torch.randn(6, 32)
    path = str(tmp_path / f'emb{suffix}')
    if suffix == '.pth':
        torch.save({'class_embeddings': emb}, path)
    else:
        from safetensors.torch import save_file
        save_file({'class_embeddings': emb}, path)
    model = build(class_embeddings=path)
    assert torch.equal(model.conditioner.class_embeddings, emb)
    assert 'conditioner.class_embeddings' in dict(model.named_buffers())
    assert model.out_channels == (32, 70, 70, 64)


def test_bad_inputs_name_the_fix(vpd):
    with pytest.raises(ValueError, match='expects images .*mean=\\[127.5\\]'):
        vpd(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match='text width is 32'):
        build(class_embeddings=torch.randn(4, 768))
    with pytest.raises(ValueError, match='use_attn=False'):
        build(class_embeddings=None)
    with pytest.raises(ValueError, match='use_attn=False'):
        build(class_embed_select=True)
    with pytest.raises(ValueError, match='unet_cfg and vae_cfg'):
        VPD(class_embeddings=None, use_attn=False)
    with pytest.raises(ValueError, match="noise must be"):
        build(noise='gaussian')
    with pytest.raises(FileNotFoundError, match='build_class_embeddings'):
        build(class_embeddings='/nonexistent/emb.pth')


def test_parameters_past_the_last_tap_are_frozen(vpd):
    """DDP needs every trainable parameter to get a gradient."""
    assert sorted(vpd.unused_unet_params) == [
        'conv_norm_out.bias', 'conv_norm_out.weight', 'conv_out.bias',
        'conv_out.weight'
    ]
    model = copy.deepcopy(vpd).train()
    sum(o.sum() for o in model(images())).backward()
    trainable = [(n, p) for n, p in model.named_parameters()
                 if p.requires_grad]
    assert trainable and all(p.grad is not None for _, p in trainable)


SD2_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=('CrossAttnDownBlock2D', ) * 3 + ('DownBlock2D', ),
    up_block_types=('UpBlock2D', ) + ('CrossAttnUpBlock2D', ) * 3,
    block_out_channels=(32, 64, 64, 64), layers_per_block=2,
    attention_head_dim=(2, 4, 4, 4), use_linear_projection=True,
    cross_attention_dim=48, norm_num_groups=32)
SDXL_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D'),
    up_block_types=('CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'UpBlock2D'),
    block_out_channels=(32, 64, 64), layers_per_block=2,
    transformer_layers_per_block=(1, 2, 2), attention_head_dim=(2, 4, 4),
    use_linear_projection=True, cross_attention_dim=32, norm_num_groups=32,
    addition_embed_type='text_time', addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=32 + 6 * 8)


@pytest.mark.parametrize('unet_cfg,taps,strides,channels', [
    (SD2_UNET, [
        'up_blocks.3', 'up_blocks.2.attentions.1',
        'up_blocks.1.attentions.1', 'up_blocks.0.resnets.1'
    ], [8, 16, 32, 64], (32, 67, 67, 64)),
    (SDXL_UNET, [
        'up_blocks.2', 'up_blocks.1.attentions.1', 'up_blocks.0.attentions.1'
    ], [8, 16, 32], (32, 67, 67)),
])
def test_other_unet_layouts(unet_cfg, taps, strides, channels):
    from mmdiff.models.diffusion import tiny_vae_cfg
    model = VPD(unet_cfg=unet_cfg, vae_cfg=tiny_vae_cfg(),
                class_embeddings=dict(num_classes=3))
    assert model.tap_paths == taps
    assert [i['reduction'] for i in model.feature_info] == strides
    assert model.out_channels == channels
    with torch.no_grad():
        outs = model(images((70, 70), batch=1))
    assert [o.shape[1] for o in outs] == list(channels)
    assert [o.shape[-1] for o in outs] == [-(-70 // s) for s in strides]
