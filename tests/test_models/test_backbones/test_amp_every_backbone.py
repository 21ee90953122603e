"""Every registered backbone honours ``amp_dtype='bfloat16'``.

The base ``forward`` (the template method) owns the autocast; subclasses
override only its public extension points (``condition``, ``extract``,
``reduce_maps``), so the projects' backbones run their U-Net under the
autocast too. A forward hook on every U-Net convolution records the dtype
it computed in: all must be bf16, and the features come back in the
input's dtype (fp32).
"""
import os.path as osp
import sys

import pytest
import torch
from torch import nn

from mmdiff.models.backbones import CachedBackbone, DiffusionBackbone
from mmdiff.models.diffusion import (tiny_sd2_unet_cfg, tiny_sdxl_unet_cfg,
                                     tiny_unet_cfg, tiny_vae_cfg)
from mmdiff.registry import MODELS
from mmdiff.testing import build_tiny_clip, demo_images

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
if ROOT not in sys.path:  # the projects' packages, as tools/ find them
    sys.path.insert(0, ROOT)
import projects.CaptionPrompts.caption_prompts  # noqa: E402,F401
import projects.Hyperfeatures.hyperfeatures  # noqa: E402,F401
import projects.MetaPrompts.meta_prompts  # noqa: E402,F401

AMP = dict(amp_dtype='bfloat16')
TINY = dict(unet_cfg=tiny_unet_cfg(), vae_cfg=tiny_vae_cfg(), **AMP)
CLASSES = dict(class_embeddings=dict(num_classes=4, dim=32))


def _cases(clip_dir):
    """(case id, registered type, build kwargs), every backbone covered."""
    return [
        ('DiffusionBackbone', 'DiffusionBackbone', dict(TINY)),
        ('VPD', 'VPD', dict(TINY, **CLASSES)),
        ('VPD-sd2', 'VPD', dict(
            TINY, unet_cfg=tiny_sd2_unet_cfg(),
            class_embeddings=dict(num_classes=4, dim=1024))),
        ('VPD-sdxl', 'VPD', dict(
            TINY, unet_cfg=tiny_sdxl_unet_cfg(),
            class_embeddings=dict(num_classes=4, dim=2048))),
        ('HyperfeatureVPD', 'HyperfeatureVPD', dict(
            TINY, timesteps=(1, 50), bottleneck=8, **CLASSES)),
        ('MetaPromptsVPD', 'MetaPromptsVPD', dict(
            TINY, num_prompts=4, num_loops=2, use_attn=True)),
        ('MetaPromptsBackbone', 'MetaPromptsBackbone', dict(
            TINY, num_prompts=4, refine_steps=2)),
        ('MetaPromptsBackbone-depth', 'MetaPromptsBackbone', dict(
            TINY, num_prompts=4, refine_steps=2, share_prompts=False,
            prompt_adapter=True, prompt_head='depth', deconv_filters=16,
            delete_time_embed=True, resize_scale=1)),
        ('CaptionVPD', 'CaptionVPD', dict(
            TINY, captions={}, text_encoder=clip_dir, max_length=8,
            missing_caption='a photo')),
        ('CachedBackbone', 'CachedBackbone', dict(
            backbone=dict(type='mmdiff.VPD', **TINY, **CLASSES),
            freeze=True)),
    ]


CASE_IDS = [c[0] for c in _cases(None)]


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    return build_tiny_clip(str(tmp_path_factory.mktemp('clip') / 'clip'))


def test_every_registered_backbone_is_covered():
    registered = {
        name for name, cls in MODELS.module_dict.items()
        if isinstance(cls, type) and issubclass(
            cls, (DiffusionBackbone, CachedBackbone))
    }
    assert registered == {c[1] for c in _cases(None)}


@pytest.mark.parametrize('case', CASE_IDS)
def test_unet_runs_in_bf16(case, clip_dir, one_thread):
    _, kind, kwargs = next(c for c in _cases(clip_dir) if c[0] == case)
    torch.manual_seed(0)
    model = MODELS.build(dict(type=f'mmdiff.{kind}', **kwargs))
    model.init_weights()
    unet = (model.backbone if kind == 'CachedBackbone' else model).unet
    dtypes = []
    for conv in unet.modules():
        if isinstance(conv, nn.Conv2d):
            conv.register_forward_hook(
                lambda m, a, out: dtypes.append(out.dtype))
    images = demo_images(batch=1, size=64)
    with torch.no_grad():
        outs = model(images)
    assert dtypes and set(dtypes) == {torch.bfloat16}, case
    assert len(outs) == len(model.out_channels)
    for out, chans in zip(outs, model.out_channels):
        assert out.dtype == torch.float32  # the input's dtype
        assert out.shape[1] == chans and torch.isfinite(out).all()
