"""SD 2.x and SDXL U-Nets as backbones, and drop-in U-Net state dicts.

Tiny SD2-shaped (per-level head dims, linear projections, 1024-d context)
and SDXL-shaped (3 levels, transformer depth, ``text_time`` added
conditioning, 2048-d context) U-Nets are built from the library's configs;
expected channels/strides are derived from those configs, not pasted.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.utils import import_modules_from_strings
from safetensors.torch import save_file

from mmdiff.models.backbones import VPD, DiffusionBackbone
from mmdiff.models.diffusion.presets import SD21_UNET, SD_VAE, SDXL_UNET
from mmdiff.models.diffusion import (tiny_sd2_unet_cfg, tiny_sdxl_unet_cfg,
                                     tiny_unet_cfg, tiny_vae_cfg)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
PROJECT = osp.join(ROOT, 'projects', 'sd2_sdxl', 'configs')


def images(size=(70, 70), batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, *size, generator=gen) * 2 - 1


def build(unet_cfg, num_classes=3, **kwargs):
    torch.manual_seed(0)
    dim = unet_cfg['cross_attention_dim']
    return VPD(unet_cfg=unet_cfg, vae_cfg=tiny_vae_cfg(),
               class_embeddings=dict(num_classes=num_classes, dim=dim),
               **kwargs)


def expected_layout(unet_cfg, num_classes):
    """VPD's taps from the block layout: per up block but the last, its
    second-to-last layer; then the last block. Strides: VAE 8 x 2^level."""
    ups = unet_cfg['up_block_types']
    chans = list(unet_cfg['block_out_channels'])[::-1]  # up block widths
    n = len(ups)
    taps, strides, channels = [f'up_blocks.{n - 1}'], [8], [chans[-1]]
    for i in range(n - 2, -1, -1):
        kind = 'attentions' if ups[i].startswith('CrossAttn') else 'resnets'
        taps.append(f'up_blocks.{i}.{kind}.1')
        strides.append(8 * 2**(n - 1 - i))
        # VPD's maps at 1/16 and 1/32 of the image (latent/2 and latent/4),
        # from the levels with cross-attention.
        has_attn = unet_cfg['down_block_types'][n - 1 - i].startswith(
            'CrossAttn')
        extra = num_classes if strides[-1] in (16, 32) and has_attn else 0
        channels.append(chans[i] + extra)
    return taps, strides, tuple(channels)


@pytest.mark.parametrize('kind', ['sd2', 'sdxl'])
def test_layout_taps_channels(kind):
    cfg = tiny_sd2_unet_cfg() if kind == 'sd2' else tiny_sdxl_unet_cfg()
    model = build(cfg)
    taps, strides, channels = expected_layout(cfg, 3)
    assert model.tap_paths == taps
    assert model.tap_strides == strides
    assert model.out_channels == channels
    assert model.cross_attention_dim == cfg['cross_attention_dim']
    # per-level heads and linear projections, as configured
    for i, block in enumerate(model.unet.down_blocks):
        for attn in getattr(block, 'attentions', []) or []:
            assert isinstance(attn.proj_in, torch.nn.Linear)
            # diffusers reads attention_head_dim as the head count
            heads = attn.transformer_blocks[0].attn1.heads
            assert heads == cfg['attention_head_dim'][i]
            if kind == 'sdxl':
                assert len(attn.transformer_blocks) == (
                    cfg['transformer_layers_per_block'][i])
    with torch.no_grad():
        outs = model(images())
    assert [o.shape[1] for o in outs] == list(channels)
    assert [o.shape[-1] for o in outs] == [-(-70 // s) for s in strides]


def _capture_added_cond(model):
    seen = {}

    def hook(module, args, kwargs):
        seen.update(kwargs.get('added_cond_kwargs') or {})

    model.unet.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def test_sdxl_added_cond_from_config():
    pooled = torch.randn(1280, generator=torch.Generator().manual_seed(1))
    model = build(tiny_sdxl_unet_cfg(), text_embeds=pooled).eval()
    seen = _capture_added_cond(model)
    x = images((70, 90))
    with torch.no_grad():
        feats = model(x)
    pad = model.size_divisor
    h, w = -(-70 // pad) * pad, -(-90 // pad) * pad
    assert torch.equal(seen['time_ids'],
                       torch.tensor([[h, w, 0, 0, h, w]] * 2).float())
    assert torch.equal(seen['text_embeds'], pooled[None].expand(2, -1))

    fixed = build(tiny_sdxl_unet_cfg(), text_embeds=pooled,
                  time_ids=(1024, 1024, 0, 0, 1024, 1024)).eval()
    fixed.load_state_dict(model.state_dict())
    seen = _capture_added_cond(fixed)
    with torch.no_grad():
        feats_fixed = fixed(x)
    assert seen['time_ids'][0].tolist() == [1024, 1024, 0, 0, 1024, 1024]
    # the added conditioning reaches the features
    assert not torch.allclose(feats[0], feats_fixed[0])
    zeros = build(tiny_sdxl_unet_cfg())  # default: SDXL's empty prompt
    assert zeros.pooled_text_embeds.shape == (1280, )
    assert not zeros.pooled_text_embeds.any()


def test_sdxl_text_embeds_file_learnable_and_errors(tmp_path):
    path = str(tmp_path / 'pooled.safetensors')
    pooled = torch.randn(1, 1280)
    save_file({'pooled_prompt_embeds': pooled}, path)
    model = build(tiny_sdxl_unet_cfg(), text_embeds=path)
    assert torch.equal(model.pooled_text_embeds, pooled[0])
    assert 'pooled_text_embeds' in model.state_dict()

    learn = build(tiny_sdxl_unet_cfg(), text_embeds=dict(learnable=True))
    learn.train()
    sum(o.sum() for o in learn(images(batch=1))).backward()
    assert learn.pooled_text_embeds.grad is not None

    with pytest.raises(ValueError, match='width 1280'):
        build(tiny_sdxl_unet_cfg(), text_embeds=torch.zeros(768))
    with pytest.raises(ValueError, match='text_time'):
        build(tiny_sd2_unet_cfg(), text_embeds=torch.zeros(1280))
    with pytest.raises(ValueError, match="'input_size'"):
        build(tiny_sdxl_unet_cfg(), time_ids='original')
    assert build(tiny_sd2_unet_cfg()).pooled_text_embeds is None


@pytest.mark.parametrize('fmt', ['safetensors', 'pth'])
def test_unet_weights_drop_in(tmp_path, fmt):
    """A U-Net state dict (CleanDIFT-style) replaces the SD U-Net weights;
    the VAE stays the one of ``pretrained``."""
    base = build(tiny_sd2_unet_cfg())
    folder = tmp_path / 'sd2'
    base.unet.save_pretrained(str(folder / 'unet'))
    base.vae.decoder = torch.nn.Identity()  # not saved: rebuilt below
    from diffusers import AutoencoderKL
    torch.manual_seed(1)
    vae = AutoencoderKL(**tiny_vae_cfg())
    vae.save_pretrained(str(folder / 'vae'))

    torch.manual_seed(2)
    clean = build(tiny_sd2_unet_cfg()).unet  # "fine-tuned" U-Net
    state = {k: v.contiguous() for k, v in clean.state_dict().items()}
    path = str(tmp_path / f'clean_unet.{fmt}')
    if fmt == 'safetensors':
        save_file(state, path)
    else:  # wrapped and prefixed, as training frameworks write them
        torch.save({'state_dict': {f'unet.{k}': v
                                   for k, v in state.items()}}, path)
    model = VPD(pretrained=str(folder), unet_weights=path,
                class_embeddings=dict(num_classes=3, dim=1024),
                local_files_only=True)
    model.init_weights()
    for k, v in model.unet.state_dict().items():
        assert torch.equal(v, state[k]), k
    for k, v in model.vae.state_dict().items():
        assert torch.equal(v, vae.state_dict()[k]), k

    # without pretrained, on top of random init; wrong architecture fails
    plain = DiffusionBackbone(unet_cfg=tiny_sd2_unet_cfg(),
                              vae_cfg=tiny_vae_cfg(), unet_weights=path)
    plain.init_weights()
    assert torch.equal(plain.unet.conv_in.weight, state['conv_in.weight'])
    other = DiffusionBackbone(unet_cfg=tiny_unet_cfg(),
                              vae_cfg=tiny_vae_cfg(), unet_weights=path)
    with pytest.raises(RuntimeError, match='does not match'):
        other.init_weights()
    with pytest.raises(FileNotFoundError, match='CleanDIFT'):
        DiffusionBackbone(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(),
                          unet_weights=str(tmp_path / 'nope.pt')
                          ).init_weights()


def _tiny_clip(folder, seed):
    from mmdiff.testing.clip import build_test_clip
    return build_test_clip(folder, seed=seed)


def test_dual_text_encoder_class_embeddings(tmp_path):
    """SDXL-style prompts: two encoders' embeddings side by side."""
    from mmdiff.models.text import get_or_build_class_embeddings
    enc_a = _tiny_clip(str(tmp_path / 'a'), 0)
    enc_b = _tiny_clip(str(tmp_path / 'b'), 1)
    names = ['cat', 'dog']
    kw = dict(class_names=names, templates=['a photo of a {}.'],
              cache_dir=str(tmp_path / 'cache'))
    cfg = tiny_sdxl_unet_cfg(cross_attention_dim=64)
    model = VPD(unet_cfg=cfg, vae_cfg=tiny_vae_cfg(),
                class_embeddings=dict(text_encoder=[enc_a, enc_b], **kw))
    want = torch.cat([get_or_build_class_embeddings(text_encoder=e, **kw)
                      for e in (enc_a, enc_b)], -1)
    assert torch.allclose(model.conditioner.class_embeddings, want)
    assert model.conditioner.class_embeddings.shape == (2, 64)


@pytest.mark.parametrize('name,unet', [
    ('vpd_sd21-fpn_8xb2-80k_ade20k-512x512.py', SD21_UNET),
    ('vpd_sdxl-fpn_8xb2-80k_ade20k-512x512.py', SDXL_UNET),
])
def test_configs_channels_with_real_shapes(name, unet):
    """The configs' neck channels are the real SD2.1 / SDXL out_channels
    (full-size U-Nets built on the meta device: no memory, no weights)."""
    cfg = Config.fromfile(osp.join(PROJECT, name))
    import_modules_from_strings(**cfg.custom_imports)
    backbone = dict(cfg.model.backbone)
    num = len(cfg.metainfo_classes) if 'metainfo_classes' in cfg else 150
    backbone.update(pretrained=None, unet_cfg=unet, vae_cfg=SD_VAE,
                    class_embeddings=dict(
                        num_classes=num, dim=unet['cross_attention_dim']))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        with torch.device('meta'):
            real = MODELS.build(backbone)
    assert list(cfg.model.neck.in_channels) == list(real.out_channels)
    assert list(cfg.model.decode_head.feature_strides) == real.tap_strides
    assert len(cfg.model.decode_head.in_index) == len(real.out_channels)
