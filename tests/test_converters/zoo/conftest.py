"""Whole-model equivalence of the zoo entries, from the SOURCES' side.

Shared helpers of test_zoo_ade20k.py, test_zoo_nyu.py and
test_zoo_meta_prompts.py.

For each zoo entry the source's model is built with the source's code where
it installs (ldm modules: Stability-AI's ldm from PyPI
stable-diffusion-sdkit 2.1.5, for SD1 the same modules as the CompVis commit
VPD pins; mmseg 1.x ``VPD`` + ``VPDDepthHead`` inside
mmseg's ``DepthEstimator``), otherwise with the stand-ins of
tests/test_converters/conftest.py (VPD's ``VPDSeg``/``VPDDepth`` glue on real
ldm modules) and of the test modules here (VPD's slide / shift-window test
loops, mmseg 0.x's test resize and normalisation). Every width and hyper-parameter of the neck, head and test
protocol comes from the recipe recorded in tests/data/recipes/ (never from
mmdiff's config); only the U-Net/VAE are tiny (the ldm shapes of
tests/test_converters/conftest.py) and, for depth, the head widths. The source is saved in its released layout, converted with
``tools/model_converters/vpd_to_mmdiff.py``, loaded with ``strict=True``
into the model of the zoo config (tiny U-Net swapped in, neck/head input
channels set to its taps), and both run the full test protocol on the same
image file: ADE20K's slide window, NYU's slide_flip (mmseg) or VPD's shift
window + flip. Predictions must agree within 1e-4 relative.
"""
import copy
import os.path as osp
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
RECIPES = osp.join(ROOT, 'tests', 'data', 'recipes')
RTOL = 1e-4


# conftest's tiny ldm U-Net without attention at 1/8 (the 64x64-latent
# self-attention of a 512 window dominates CPU time); the cross-attention
# maps VPD uses (1/16, 1/32) and all four taps are still there.
ZOO_UNET_ATTENTION = [4, 2]


@pytest.fixture(scope='module')
def zoo_ldm(helpers, tmp_path_factory):
    """(ldm U-Net params, ldm yaml path) for the zoo tests."""
    cfg = copy.deepcopy(helpers.ORIGINAL_CONFIG)
    unet = cfg['model']['params']['unet_config']['params']
    unet['attention_resolutions'] = ZOO_UNET_ATTENTION
    path = tmp_path_factory.mktemp('zoo_ldm') / 'zoo-inference.yaml'
    path.write_text(yaml.safe_dump(cfg))
    return unet, str(path)


def _tuples(value):
    """YAML lists as the tuples mmcv transforms expect."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def recipe(name):
    with open(osp.join(RECIPES, name)) as f:
        return yaml.safe_load(f)


@pytest.fixture(autouse=True)
def _scope():
    import mmdiff.datasets.nyu_scenes  # noqa: F401
    import mmdiff.models  # noqa: F401
    with DefaultScope.overwrite_default_scope('mmseg'):
        yield


def _convert(tool, tmp_path, src_obj, yaml_path, name):
    src, dst = tmp_path / f'{name}.pth', tmp_path / f'{name}_mmdiff.pth'
    emb = tmp_path / f'{name}_emb.pth'
    torch.save(src_obj, src)
    assert tool.main([str(src), str(dst), '--original-config', yaml_path,
                      '--save-class-embeddings', str(emb)]) == 0
    return torch.load(dst, weights_only=True), str(emb)


def _zoo_model(config, ckpt, emb, taps_to, **head_widths):
    """The zoo config's model, tiny U-Net/VAE of the converted file, neck or
    head input channels set to the tiny taps (and the depth head's widths
    to ``head_widths``); loaded strictly."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    meta = ckpt['meta']['converted_from']
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(pretrained=None, unet_cfg=meta['unet_cfg'],
                              vae_cfg=meta['vae_cfg'], class_embeddings=emb)
    backbone = MODELS.build(copy.deepcopy(model_cfg.backbone))
    model_cfg[taps_to].in_channels = list(backbone.out_channels)
    model_cfg.decode_head.update(head_widths)
    model = MODELS.build(model_cfg)
    res = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not res.missing_keys and not res.unexpected_keys
    return cfg, model.eval()


def _rel_diff(ours, ref):
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def _write_image(path, h, w, seed):
    """A smooth random colour image (not noise: resizing must matter)."""
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 16 + 1, w // 16 + 1, generator=gen)
    img = F.interpolate(low, size=(h, w), mode='bilinear')[0]
    img = (img * 255).round().byte().permute(1, 2, 0).numpy()
    mmcv.imwrite(img, str(path))


def _mmseg0x_test_image(path, rec):
    """An mmseg 0.x recipe's test input of an image file: MultiScaleFlipAug
    ``img_scale`` (Resize keep_ratio = ``mmcv.imrescale``), Normalize
    (``to_rgb``), ``(1, 3, H, W)``."""
    aug = rec['test_pipeline'][1]
    norm = rec['img_norm_cfg']
    img = mmcv.imrescale(mmcv.imread(str(path)), tuple(aug['img_scale']))
    img = mmcv.imnormalize(img.astype(np.float32), np.array(norm['mean']),
                           np.array(norm['std']), norm['to_rgb'])
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope='session')
def zoo():
    """The helpers above, for the test modules (importlib import mode)."""
    return SimpleNamespace(
        ROOT=ROOT, RTOL=RTOL, recipe=recipe, tuples=_tuples,
        convert=_convert, zoo_model=_zoo_model, rel_diff=_rel_diff,
        write_image=_write_image, mmseg0x_test_image=_mmseg0x_test_image)

