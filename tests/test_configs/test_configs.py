"""Every config under configs/ (and projects/*/configs/) loads and builds.

Parameterised over the folders, so a new config is covered automatically.
Each config is built twice without touching the network:
- the released model's shapes on the meta device (no memory, no weights;
  diffusion transformers: mmdiff.models.diffusion.presets.DIT_PRESETS),
  (the demos: their own tiny backbone), to check that the channels written
  in the config (neck / head ``in_channels``) are the backbone's real
  ``out_channels``, and that the strides written for anchors, RoI
  extractors and FPN heads are those of the levels they read;
- as a whole host model: the demos as written, the released configs with
  the tiny SD-shaped U-Net swapped in.
"""
import copy
import glob
import inspect
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.utils import import_modules_from_strings

from mmdiff.apis import check_strides, level_strides
from mmdiff.models.diffusion import (tiny_dit_configs, tiny_pixart_cfg,
                                     tiny_sdxl_unet_cfg, tiny_unet_cfg,
                                     tiny_vae_cfg)
from mmdiff.models.diffusion.presets import (SD_VAE, SDXL_UNET, real_dit_cfg,
                                             real_unet_cfg)
from mmdiff.models.text import resolve_class_names

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for pattern in ('configs/**/*.py', 'projects/*/configs/**/*.py')
    for p in glob.glob(osp.join(ROOT, pattern), recursive=True)
    if '_base_' not in p.split(osp.sep)
    # GenerativeDepth's U-Net is the predictor, not a backbone with host
    # necks/heads: its configs are built and trained in
    # tests/test_projects/test_generative_depth.py
    and 'GenerativeDepth' not in p.split(osp.sep)
    # configs/pretrain/ builds a DiffusionPretrainer, no backbone: built and
    # trained in tests/test_tools/test_pretrain.py
    and 'pretrain' not in p.split(osp.sep))
def _num_classes(emb) -> int:
    if emb is None:
        return 0
    if 'num_classes' in emb:
        return emb['num_classes']
    return len(resolve_class_names(emb['class_names']))


def _swap(backbone: dict, unet: dict, vae: dict, dim: int) -> dict:
    """The same backbone on given U-Net/VAE configs and random prompts."""
    backbone = copy.deepcopy(backbone)
    backbone.update(pretrained=None, unet_cfg=unet, vae_cfg=vae)
    emb = backbone.get('class_embeddings')
    if emb is not None:
        backbone['class_embeddings'] = dict(
            num_classes=_num_classes(emb), dim=dim)
    return backbone


def _channel_owner(model: dict):
    """The module config whose in_channels are the backbone's channels."""
    if model.get('panoptic_head') is not None:  # mmdet MaskFormer family
        return model['panoptic_head'], 'in_channels'
    if model.get('neck') is not None:
        neck = model['neck']
        return (neck[0] if isinstance(neck, list) else neck), 'in_channels'
    return model['decode_head'], 'in_channels'


def _load(path: str) -> Config:
    cfg = Config.fromfile(path)
    assert cfg.get('default_scope') in ('mmseg', 'mmdet'), path
    if 'custom_imports' in cfg:
        import_modules_from_strings(**cfg.custom_imports)
    return cfg


def test_configs_found():
    names = {osp.basename(p) for p in CONFIGS}
    assert 'vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py' in names
    assert len([p for p in CONFIGS if '/demo/' in p]) >= 4


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = _load(path)
    backbone = cfg.model.backbone
    assert backbone.type.startswith('mmdiff.'), backbone.type
    owner, key = _channel_owner(cfg.model)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        dit = backbone.type == 'mmdiff.DiTBackbone'
        if dit and backbone.get('pretrained') is not None:
            # The released transformer's shapes (SD3.5-medium, FLUX.1-dev).
            family, transformer, vae = real_dit_cfg(backbone.pretrained)
            real_cfg = dict(copy.deepcopy(backbone), pretrained=None,
                            family=family, transformer_cfg=transformer,
                            vae_cfg=vae)
        elif backbone.get('pretrained') is not None:
            # The released model's shapes (SD1.5 / 2.x / XL, by its id).
            unet = real_unet_cfg(backbone.pretrained)
            real_cfg = _swap(backbone, unet, SD_VAE,
                             unet['cross_attention_dim'])
        else:
            # The demos: the backbone exactly as the config writes it.
            real_cfg = copy.deepcopy(backbone)
        # Built on the meta device (no memory, no weights read), its
        # out_channels are the channels the config must have written.
        with torch.device('meta'):
            real = MODELS.build(real_cfg)
        assert list(owner[key]) == list(real.out_channels), (
            f'{path}: {key} {list(owner[key])} != the backbone\'s '
            f'out_channels {list(real.out_channels)}')
        # the whole host model at the released shapes, on the meta device:
        # anchor / RoI / FPNHead strides are those of the levels they read
        with torch.device('meta'):
            whole = MODELS.build(dict(copy.deepcopy(cfg.model),
                                      backbone=real_cfg))
        check_strides(whole)
        first = real.feature_info[0]['reduction']
        neck = getattr(whole, 'neck', None)
        if hasattr(neck, 'scale_factors'):  # SimpleFeaturePyramid
            first = first / max(neck.scale_factors)
        assert level_strides(whole)[0] == first
        tiny = copy.deepcopy(cfg.model)
        if backbone.get('pretrained') is not None:
            # released shapes are too big to build: the tiny U-Net (or
            # transformer of the family, taps within its 3-4 blocks), and
            # the host's channels made the tiny backbone's (checked above
            # for the released ones)
            if dit:
                transformer, vae = tiny_dit_configs(family)
                tiny.backbone = dict(
                    real_cfg, transformer_cfg=transformer, vae_cfg=vae,
                    taps=tuple(min(i, 2) for i in range(len(
                        backbone.taps))))
            else:
                xl = real_unet_cfg(backbone.pretrained) is SDXL_UNET
                tiny_unet = tiny_sdxl_unet_cfg() if xl else tiny_unet_cfg()
                tiny.backbone = _swap(backbone, tiny_unet, tiny_vae_cfg(),
                                      tiny_unet['cross_attention_dim'])
            channels = list(MODELS.build(tiny.backbone).out_channels)
            owner, key = _channel_owner(tiny)
            owner[key] = channels
        model = MODELS.build(tiny)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 0


def _keys(obj) -> set:
    """Every dict key in a nested config value."""
    if isinstance(obj, dict):
        return set(obj).union(*(_keys(v) for v in obj.values()))
    if isinstance(obj, (list, tuple)):
        return set().union(*(_keys(v) for v in obj))
    return set()


def test_runtime_bases_carry_no_model():
    """Runtime bases live in configs/_base_/runtime/ (none at the _base_
    root) and bring no model: no ``model``, no U-Net/VAE/backbone config."""
    base = osp.join(ROOT, 'configs', '_base_')
    assert not glob.glob(osp.join(base, '*.py')), 'a runtime at _base_/'
    paths = sorted(glob.glob(osp.join(base, 'runtime', '*.py')))
    assert paths
    for path in paths:
        keys = _keys(Config.fromfile(path).to_dict())
        found = sorted(k for k in keys if k == 'model' or any(
            w in k.lower() for w in ('unet', 'vae', 'backbone')))
        assert not found, f'{osp.basename(path)} carries model keys {found}'


def test_tiny_library_configs_are_the_base():
    """tiny_unet_cfg()/tiny_vae_cfg() are configs/_base_/models/vpd_tiny.py's
    and read it: no second copy of the shapes in the library."""
    base = Config.fromfile(
        osp.join(ROOT, 'configs/_base_/models/vpd_tiny.py'))
    assert tiny_unet_cfg() == base.tiny_unet_cfg.to_dict()
    assert tiny_vae_cfg() == base.tiny_vae_cfg.to_dict()
    dit = Config.fromfile(osp.join(ROOT, 'configs/_base_/models/dit_tiny.py'))
    assert tiny_pixart_cfg() == dit.tiny_pixart_cfg.to_dict()
    for func in (tiny_unet_cfg, tiny_vae_cfg, tiny_pixart_cfg):
        assert 'sample_size' not in inspect.getsource(func)


def test_mmdiff_scope_base_from_install(tmp_path):
    """``mmdiff::`` bases resolve through the installed package (.mim)."""
    child = tmp_path / 'child.py'
    child.write_text("_base_ = 'mmdiff::demo/vpd_tiny-fpn_demo-seg.py'\n"
                     'train_cfg = dict(max_iters=7)\n')
    cfg = Config.fromfile(str(child))
    assert cfg.train_cfg.max_iters == 7
    assert cfg.model.backbone.type == 'mmdiff.VPD'
