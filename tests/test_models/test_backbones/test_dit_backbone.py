"""DiTBackbone against diffusers' own transformers (SD3.5, FLUX.1,
PixArt-Sigma, Sana layouts, tiny and random), loaded from saved pipeline
folders as a user would.

References come from diffusers: the transformer's own forward (the tapped
block hooked here), ``FlowMatchEulerDiscreteScheduler.scale_noise``,
``FluxPipeline``'s packing and ids, ``SanaPipeline``'s latents (DC-AE
latents times ``scaling_factor``) and timestep (``t * timestep_scale``);
maps from an explicit softmax(QK^T) of the block's own projections, checked
to be the probabilities the layer used (P @ V through ``to_out`` equals the
layer's output).
"""
import math
import re

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.models.embeddings import apply_rotary_emb

from mmdiff.models.backbones import DiTBackbone
from mmdiff.models.necks import SimpleFeaturePyramid
from mmdiff.testing import demo_images, save_tiny_dit

FAMILIES = ('sd3', 'flux', 'pixart', 'sana')
T = 300


@pytest.fixture(scope='module', params=FAMILIES)
def saved(request, tmp_path_factory):
    """``(family, folder, transformer, vae)``: a tiny model saved and
    reloaded by diffusers."""
    folder = str(tmp_path_factory.mktemp(f'tiny-{request.param}'))
    save_tiny_dit(folder, request.param, seed=3)
    from mmdiff.models.diffusion.dit import get_family
    adapter = get_family(request.param)
    transformer = adapter.model_class().from_pretrained(
        folder, subfolder='transformer').eval()
    vae = adapter.vae_class().from_pretrained(folder, subfolder='vae').eval()
    return request.param, folder, transformer, vae


def _backbone(folder: str, **kwargs) -> DiTBackbone:
    model = DiTBackbone(pretrained=folder, local_files_only=True, **kwargs)
    model.init_weights()
    return model.eval()


def _latents(family, vae, images):
    """Latents as the pipelines normalise them (Sana: the DC-AE's
    deterministic latents times ``scaling_factor``, as ``SanaPipeline``
    decodes ``latents / scaling_factor``)."""
    if family == 'sana':
        return vae.encode(images).latent * vae.config.scaling_factor
    z = vae.encode(images).latent_dist.mode()
    return (z - (vae.config.shift_factor or 0.)) * vae.config.scaling_factor


def _noised(family, vae, images):
    """Latents as the pipelines normalise them, noised at T by the source:
    the flow-matching scheduler (SD3, FLUX, Sana) / DDPM linear betas
    (PixArt)."""
    z = _latents(family, vae, images)
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    if family == 'pixart':
        betas = torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64)
        abar = torch.cumprod(1 - betas, 0)[T].float()
        return abar.sqrt() * z + (1 - abar).sqrt() * noise
    sched = FlowMatchEulerDiscreteScheduler()  # shift 1: t = 1000 sigma
    return sched.scale_noise(z, torch.tensor([float(T)]), noise)


def _reference(family, transformer, latents, text, pooled, hook_module):
    """Run diffusers' transformer as its pipeline does; return what
    ``hook_module`` output (the image stream) and its grid."""
    got = {}

    def hook(module, args, output):
        got['out'] = output if torch.is_tensor(output) else output[1]
    handle = hook_module.register_forward_hook(hook)
    batch, _, height, width = latents.shape
    with torch.no_grad():
        if family == 'sd3':
            transformer(hidden_states=latents, encoder_hidden_states=text,
                        pooled_projections=pooled,
                        timestep=torch.full((batch, ), float(T)))
            grid = (height // 2, width // 2)
        elif family == 'flux':
            from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
            packed = FluxPipeline._pack_latents(latents, batch,
                                                latents.shape[1], height,
                                                width)
            ids = FluxPipeline._prepare_latent_image_ids(
                batch, height // 2, width // 2, 'cpu', torch.float32)
            transformer(hidden_states=packed, encoder_hidden_states=text,
                        pooled_projections=pooled,
                        timestep=torch.full((batch, ), T / 1000),
                        guidance=torch.full((batch, ), 3.5), img_ids=ids,
                        txt_ids=torch.zeros(text.shape[1], 3))
            grid = (height // 2, width // 2)
        elif family == 'sana':  # SanaPipeline's call
            transformer(latents, encoder_hidden_states=text,
                        timestep=torch.full((batch, ), float(T))
                        * transformer.config.timestep_scale,
                        return_dict=False)
            grid = (height, width)
        else:
            transformer(latents, encoder_hidden_states=text,
                        timestep=torch.full((batch, ), T),
                        added_cond_kwargs=dict(resolution=None,
                                               aspect_ratio=None))
            grid = (height // 2, width // 2)
    handle.remove()
    return got['out'], grid


def _last_block(family, transformer):
    if family == 'flux':
        return transformer.single_transformer_blocks[-1]
    return transformer.transformer_blocks[-1]


def test_last_block_equals_diffusers_forward(saved):
    family, folder, transformer, vae = saved
    model = _backbone(folder, taps=(-1, ), noise='seeded', timestep=T)
    stride = 32 if family == 'sana' else 16
    # non-square: row-major; 3x5 tokens
    images = demo_images(2, (3 * stride, 5 * stride), seed=1)
    with torch.no_grad():
        feat, = model(images)
        latents = _noised(family, vae, images)
    text = torch.zeros(2, 1, model.text_dim)
    pooled = None if model.pooled_dim is None else \
        torch.zeros(2, model.pooled_dim)
    tokens, grid = _reference(family, transformer, latents, text, pooled,
                              _last_block(family, transformer))
    want = tokens.transpose(1, 2).reshape(2, -1, *grid)
    width = model.family.width(transformer)
    assert feat.shape == (2, width, 3, 5)
    assert model.out_channels == (width, )
    assert model.feature_info[0]['reduction'] == stride
    torch.testing.assert_close(feat, want, rtol=1e-4, atol=1e-5)


def _explicit_probs(family, attn, inputs):
    """Full softmax(QK^T / sqrt(d)) of a joint/cross attention layer from
    its own projections: ``(B, H, Nq, Nk)``, the image queries' rows and
    the text keys' columns, and P @ V through the output projection."""
    hidden, text = inputs['hidden_states'], inputs['encoder_hidden_states']
    heads = attn.heads

    def split(x):
        return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # B, H, N, d

    def norm(name, x):
        mod = getattr(attn, name, None)
        return x if mod is None else mod(x)
    if family == 'pixart':
        q, k, v = (split(attn.to_q(hidden)), split(attn.to_k(text)),
                   split(attn.to_v(text)))
        img, txt = slice(None), slice(None)
    elif family == 'sana':  # q/k norms across heads, before the split
        q = split(norm('norm_q', attn.to_q(hidden)))
        k = split(norm('norm_k', attn.to_k(text)))
        v = split(attn.to_v(text))
        img, txt = slice(None), slice(None)
    else:
        q = norm('norm_q', split(attn.to_q(hidden)))
        k = norm('norm_k', split(attn.to_k(hidden)))
        v = split(attn.to_v(hidden))
        cq = norm('norm_added_q', split(attn.add_q_proj(text)))
        ck = norm('norm_added_k', split(attn.add_k_proj(text)))
        cv = split(attn.add_v_proj(text))
        n_img, n_txt = hidden.shape[1], text.shape[1]
        if family == 'flux':  # text first, rotary on the whole sequence
            q, k, v = (torch.cat([cq, q], 2), torch.cat([ck, k], 2),
                       torch.cat([cv, v], 2))
            rope = inputs['image_rotary_emb']
            q = apply_rotary_emb(q, rope)  # sequence_dim 2: (B, H, S, D)
            k = apply_rotary_emb(k, rope)
            img, txt = slice(n_txt, None), slice(0, n_txt)
        else:
            q, k, v = (torch.cat([q, cq], 2), torch.cat([k, ck], 2),
                       torch.cat([v, cv], 2))
            img, txt = slice(0, n_img), slice(n_img, None)
    probs = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1]**0.5, -1)
    out = (probs @ v).transpose(1, 2).flatten(2)[:, img]
    out = attn.to_out[1](attn.to_out[0](out))
    return probs[:, :, img, txt], out


def test_maps_equal_explicit_softmax(saved):
    family, folder, transformer, vae = saved
    block = 1
    embeds = torch.randn(3, transformer.config.get(
        'caption_channels') or transformer.config.joint_attention_dim,
        generator=torch.Generator().manual_seed(2))
    model = _backbone(folder, taps=(0, ), attn_blocks=(block, ),
                      conditioner=dict(type='ClassPrompts',
                                       class_embeddings=embeds,
                                       text_adapter=False),
                      noise='none', timestep=T)
    # maps are collected on the chosen block only; the forward ran past
    # the last tap (block 0) to reach it
    assert model.out_channels == (model.family.width(transformer) + 3, )
    stride = model.size_divisor
    images = demo_images(1, (2 * stride, 3 * stride), seed=4)
    with torch.no_grad():
        feat, = model(images)
        latents = _latents(family, vae, images)
    layer = transformer.transformer_blocks[block]
    layer = layer.attn2 if family in ('pixart', 'sana') else layer.attn
    seen = {}

    def pre(module, args, kwargs):
        names = ('hidden_states', 'encoder_hidden_states', 'attention_mask',
                 'image_rotary_emb')
        seen.update(zip(names, args))
        seen.update(kwargs)

    def post(module, args, kwargs, output):
        seen['output'] = output[0] if isinstance(output, tuple) else output
    handles = [layer.register_forward_pre_hook(pre, with_kwargs=True),
               layer.register_forward_hook(post, with_kwargs=True)]
    pooled = None if model.pooled_dim is None else \
        torch.zeros(1, model.pooled_dim)
    _reference(family, transformer, latents, embeds[None], pooled,
               transformer.transformer_blocks[0])
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        probs, out = _explicit_probs(family, layer, seen)
    # these are the probabilities the layer used
    torch.testing.assert_close(out, seen['output'], rtol=1e-4, atol=1e-5)
    maps = probs.mean(1).transpose(1, 2).reshape(1, 3, 2, 3)
    torch.testing.assert_close(feat[:, -3:], maps, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(maps[:, 0], maps[:, 1])  # per token


def test_taps_stop_early_and_freeze_the_rest(saved):
    family, folder, transformer, vae = saved
    model = _backbone(folder, taps=(0, ))
    blocks = model.family.block_paths(model.transformer)
    ran = []
    handle = model.transformer.get_submodule(blocks[-1]).register_forward_hook(
        lambda *args: ran.append(1))
    model.train()
    feats = model(demo_images(1, 32))
    handle.remove()
    assert not ran  # early stop after block 0
    feats[0].sum().backward()
    last = model.transformer.get_submodule(blocks[-1])
    assert all(not p.requires_grad for p in last.parameters())
    first = model.transformer.get_submodule(blocks[0])
    assert any(p.grad is not None for p in first.parameters())
    assert all(not p.requires_grad for p in model.vae.parameters())
    with pytest.raises(ValueError, match='not a block index'):
        DiTBackbone(pretrained=folder, taps=(len(blocks), ))


def test_variable_sizes_and_sd3_limit(saved):
    family, folder, transformer, vae = saved
    model = _backbone(folder)
    stride = model.size_divisor
    assert stride == (32 if family == 'sana' else 16)
    with torch.no_grad():  # padded to the stride's multiple, cropped back
        feat, = model(demo_images(1, (40, 72)))
    assert feat.shape[-2:] == (math.ceil(40 / stride),
                               math.ceil(72 / stride))
    if family == 'sd3':  # 32 position embeddings a side: 512 pixels
        with pytest.raises(ValueError, match='at most 512 pixels'):
            model(demo_images(1, (16, 528)))
    else:  # rotary / recomputed sin-cos / none (Sana): any size
        with torch.no_grad():
            feat, = model(demo_images(1, (stride, 528)))
        assert feat.shape[-2:] == (1, math.ceil(528 / stride))


def test_transformer_weights_lora_checkpointing_amp(saved, tmp_path):
    family, folder, transformer, vae = saved
    from safetensors.torch import save_file
    path = str(tmp_path / 'ft.safetensors')
    save_file({f'transformer.{k}': v.contiguous()
               for k, v in transformer.state_dict().items()}, path)
    images = demo_images(2, 32)
    ref = _backbone(folder, taps=(1, ))
    # random transformer + the drop-in file == the pretrained one
    args = dict(family=family, transformer_cfg=dict(transformer.config),
                vae_cfg=dict(vae.config), vae_weights=folder, taps=(1, ))
    drop = DiTBackbone(transformer_weights=path, **args)
    drop.init_weights()
    lora = DiTBackbone(transformer_weights=path, lora=dict(rank=4),
                       grad_checkpointing=True, amp_dtype='bfloat16', **args)
    lora.init_weights()
    with torch.no_grad():
        want, = ref(images)
        got, = drop.eval()(images)
    torch.testing.assert_close(got, want)
    lora.train()
    dtypes = set()
    lora.transformer.transformer_blocks[0].ff.register_forward_hook(
        lambda m, a, o: dtypes.add(o.dtype))
    out, = lora(images)
    assert dtypes == {torch.bfloat16}  # the transformer ran autocast
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, want, rtol=0.05, atol=0.05)  # bf16
    out.square().mean().backward()
    trained = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trained and all('lora_' in n for n in trained)
    assert all(p.grad is not None for n, p in lora.named_parameters()
               if p.requires_grad and '.transformer_blocks.0.' in n
               and re.search(r'\.attn\d?\.to_q', n))
    assert lora.transformer.gradient_checkpointing


def test_simple_feature_pyramid():
    one = SimpleFeaturePyramid(24, 8, num_outs=5)
    feats = one((torch.randn(2, 24, 4, 6), ))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6),
                                            (2, 3), (1, 2)]
    assert all(f.shape[1] == 8 for f in feats)
    multi = SimpleFeaturePyramid([24, 24, 24, 24], 8)
    feats = multi(tuple(torch.randn(1, 24, 4, 4) for _ in range(4)))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]
    with pytest.raises(ValueError, match='one per scale'):
        SimpleFeaturePyramid([24, 24], 8)
    # ViTDet's scale 4: the layout (state dict keys) it always had
    assert [k for k in one.state_dict() if k.startswith('stages.0.')][:4] \
        == ['stages.0.0.weight', 'stages.0.0.bias', 'stages.0.1.weight',
            'stages.0.1.bias']
    assert isinstance(one.stages[0][3], torch.nn.ConvTranspose2d)
    # stride-32 features (Sana): scale 8 reaches stride 4
    sana = SimpleFeaturePyramid(32, 8, scale_factors=(8, 4, 2, 1))
    feats = sana((torch.randn(1, 32, 2, 3), ))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6),
                                            (2, 3)]
    assert sana.out_strides([32]) == [4, 8, 16, 32]
    assert sum(isinstance(m, torch.nn.ConvTranspose2d)
               for m in sana.stages[0]) == 3
    with pytest.raises(ValueError, match='not one of'):
        SimpleFeaturePyramid(32, 8, scale_factors=(16, ))


def test_loading_errors(saved, tmp_path):
    family, folder, transformer, vae = saved
    other = 'pixart' if family != 'pixart' else 'sd3'
    with pytest.raises(ValueError, match=f"family='{family}'"):
        DiTBackbone(family=other, pretrained=folder)
    single = tmp_path / 'model.safetensors'
    single.write_bytes(b'')
    with pytest.raises(ValueError, match='original_config'):
        DiTBackbone(pretrained=str(single))
    with pytest.raises(FileNotFoundError, match='transformer/'):
        DiTBackbone(pretrained=str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='needs family'):
        DiTBackbone(transformer_cfg=dict(transformer.config),
                    vae_cfg=dict(vae.config))


def test_argument_errors():
    from mmdiff.models.diffusion import tiny_dit_configs
    transformer, vae = tiny_dit_configs('flux')
    flux = dict(family='flux', transformer_cfg=transformer, vae_cfg=vae)
    with pytest.raises(ValueError, match='joint'):
        DiTBackbone(attn_blocks=(2, ), **flux)  # a single-stream block
    with pytest.raises(ValueError, match='the model takes 32'):
        DiTBackbone(pooled_embeds=torch.zeros(5), **flux)
    transformer, vae = tiny_dit_configs('pixart')
    with pytest.raises(ValueError, match='no pooled'):
        DiTBackbone(family='pixart', transformer_cfg=transformer,
                    vae_cfg=vae, pooled_embeds=torch.zeros(5))


def test_sana_argument_errors():
    from mmdiff.models.diffusion import tiny_dit_configs
    transformer, vae = tiny_dit_configs('sana')
    sana = dict(family='sana', transformer_cfg=transformer, vae_cfg=vae)
    with pytest.raises(ValueError, match='deterministic'):
        DiTBackbone(latent_mode='sample', **sana)
    with pytest.raises(ValueError, match='no pooled'):
        DiTBackbone(pooled_embeds=torch.zeros(5), **sana)
    with pytest.raises(ValueError, match='not a block index'):
        DiTBackbone(attn_blocks=(3, ), **sana)  # 3 blocks: 0-2
    with pytest.raises(ValueError, match='Sana-Sprint'):
        DiTBackbone(family='sana', vae_cfg=vae,
                    transformer_cfg=dict(transformer, guidance_embeds=True))
    with pytest.raises(ValueError, match='width'):  # not Gemma's width
        DiTBackbone(conditioner=dict(type='ClassPrompts',
                                     class_embeddings=torch.zeros(2, 7)),
                    **sana)


def test_sana_single_file_reads_the_vae_from_original_config(
        tmp_path, monkeypatch):
    """Sana's original checkpoint holds the transformer only: it goes
    through ``SanaTransformer2DModel.from_single_file`` (stood in for here:
    no original-layout file is written), the DC-AE comes from
    ``original_config``'s ``vae/``, never from the single file."""
    from diffusers import AutoencoderDC, SanaTransformer2DModel
    folder = str(tmp_path / 'sana')
    transformer, _ = save_tiny_dit(folder, 'sana', seed=5)
    single = tmp_path / 'Sana_1600M_1024px.pth'
    single.write_bytes(b'')
    calls = []

    def from_single_file(cls, path, **kwargs):
        calls.append((path, kwargs))
        return transformer

    def no_vae(cls, *args, **kwargs):
        raise AssertionError('the DC-AE is not in the single file')
    monkeypatch.setattr(SanaTransformer2DModel, 'from_single_file',
                        classmethod(from_single_file))
    monkeypatch.setattr(AutoencoderDC, 'from_single_file',
                        classmethod(no_vae))
    model = DiTBackbone(pretrained=str(single), original_config=folder,
                        local_files_only=True)
    model.init_weights()
    assert calls == [(str(single), dict(config=folder,
                                        subfolder='transformer',
                                        local_files_only=True))]
    images = demo_images(1, 64)
    with torch.no_grad():
        got, = model.eval()(images)
        want, = _backbone(folder)(images)
    torch.testing.assert_close(got, want)


def test_sana_learnable_class_prompts_and_their_maps():
    """Learnable Gemma-width prompts: K map channels from the chosen
    cross-attention blocks, gradients reach the prompts and the layers."""
    from mmdiff.models.diffusion import tiny_dit_configs
    transformer, vae = tiny_dit_configs('sana')
    model = DiTBackbone(
        family='sana', transformer_cfg=transformer, vae_cfg=vae,
        taps=(0, 2), attn_blocks=(1, 2),
        conditioner=dict(type='ClassPrompts', text_adapter=False,
                         class_embeddings=dict(num_classes=4, dim=32)))
    assert model.text_dim == 32 and model.size_divisor == 32
    assert model.out_channels == (16 + 4, 16 + 4)
    assert model.feature_info[1]['module'] == \
        'transformer.transformer_blocks.2'
    feats = model.train()(demo_images(2, (64, 96)))
    assert [f.shape for f in feats] == [(2, 20, 2, 3)] * 2
    maps = feats[0][:, -4:]
    assert torch.equal(maps, feats[1][:, -4:])  # the same maps per tap
    assert ((maps > 0) & (maps < 1)).all()
    # cross-attention: each image query's probabilities over the K tokens
    torch.testing.assert_close(maps.sum(1), torch.ones(2, 2, 3))
    feats[1][:, :16].sum().backward()
    prompts = [p for n, p in model.conditioner.named_parameters()]
    assert prompts and all(p.grad is not None and p.grad.abs().sum() > 0
                           for p in prompts)
    assert model.transformer.transformer_blocks[2].attn2.to_q.weight.grad \
        is not None
