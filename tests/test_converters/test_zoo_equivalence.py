"""Whole-model equivalence of the zoo entries, from the SOURCES' side.

For each zoo entry the source's model is built with the source's code where
it installs (CompVis ldm modules; mmseg 1.x ``VPD`` + ``VPDDepthHead`` inside
mmseg's ``DepthEstimator``), otherwise with the stand-ins of conftest.py
(VPD's ``VPDSeg``/``VPDDepth`` glue on real ldm modules) and of this file
(VPD's slide / shift-window test loops, mmseg 0.x's test resize and
normalisation). Every width and hyper-parameter of the neck, head and test
protocol comes from the recipe recorded in tests/data/recipes/ (never from
mmdiff's config); only the U-Net/VAE are tiny (the ldm shapes of
conftest.py). The source is saved in its released layout, converted with
``tools/model_converters/vpd_to_mmdiff.py``, loaded with ``strict=True``
into the model of the zoo config (tiny U-Net swapped in, neck/head input
channels set to its taps), and both run the full test protocol on the same
image file: ADE20K's slide window, NYU's slide_flip (mmseg) or VPD's shift
window + flip. Predictions must agree within 1e-4 relative.
"""
import copy
import importlib.util
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
RECIPES = osp.join(ROOT, 'tests', 'data', 'recipes')
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'vpd_to_mmdiff.py')
ADE_CONFIG = 'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py'
RTOL = 1e-4


def recipe(name):
    with open(osp.join(RECIPES, name)) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('vpd_to_mmdiff', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _zoo_model(config, ckpt, emb, taps_to):
    """The zoo config's model, tiny U-Net/VAE of the converted file, neck or
    head input channels set to the tiny taps; loaded strictly."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, config))
    meta = ckpt['meta']['converted_from']
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(pretrained=None, unet_cfg=meta['unet_cfg'],
                              vae_cfg=meta['vae_cfg'], class_embeddings=emb)
    backbone = MODELS.build(copy.deepcopy(model_cfg.backbone))
    model_cfg[taps_to].in_channels = list(backbone.out_channels)
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


# --------------------------------------------------------------------------
# ADE20K: VPD's VPDSeg, mmseg 0.x test pipeline, VPD's slide inference
# --------------------------------------------------------------------------
def vpd_slide_inference(source, img, num_classes, crop, stride):
    """VPDSeg.slide_inference (segmentation/models/vpd_seg.py): windows,
    per-window logits resized to the window, summed, divided by counts."""
    (h_stride, w_stride), (h_crop, w_crop) = stride, crop
    batch, _, h_img, w_img = img.shape
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    preds = img.new_zeros((batch, num_classes, h_img, w_img))
    count = img.new_zeros((batch, 1, h_img, w_img))
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, h_img)
            x2 = min(w_idx * w_stride + w_crop, w_img)
            y1, x1 = max(y2 - h_crop, 0), max(x2 - w_crop, 0)
            window = img[:, :, y1:y2, x1:x2]
            logit = F.interpolate(source(window), size=window.shape[2:],
                                  mode='bilinear', align_corners=False)
            preds[:, :, y1:y2, x1:x2] += logit
            count[:, :, y1:y2, x1:x2] += 1
    return preds / count


@pytest.fixture(scope='module')
def ade(tool, helpers, original_config_yaml, tmp_path_factory):
    """VPD's ADE20K model from its recipe, converted, and the zoo model."""
    import mmdiff.models  # noqa: F401
    rec = recipe('vpd_ade20k.yml')['recipe']
    tmp = tmp_path_factory.mktemp('ade')
    head = dict(rec['model']['decode_head'])
    k = head['num_classes']
    taps = helpers.TAP_CHANNELS  # tiny U-Net taps in place of SD1.5's
    neck = dict(rec['model']['neck'],
                in_channels=[taps[0], taps[1] + k, taps[2] + k, taps[3]])
    with DefaultScope.overwrite_default_scope('mmseg'):
        source = helpers.VPDSegSource(k, rec['crop_size'][0], neck=neck,
                                      decode_head=head)
    helpers.randomise(source, seed=11)
    ckpt, emb = _convert(tool, tmp, source.state_dict(),
                         original_config_yaml, 'vpd_seg_ade')
    with DefaultScope.overwrite_default_scope('mmseg'):
        cfg, model = _zoo_model(ADE_CONFIG, ckpt, emb, 'neck')
    return dict(rec=rec, source=source, ckpt=ckpt, cfg=cfg, model=model,
                tmp=tmp)


def test_vpd_ade20k_release_whole_model(ade):
    """ADE20K: logits after the full test protocol on one image file."""
    rec, source, model, cfg = ade['rec'], ade['source'], ade['model'], \
        ade['cfg']
    img_path, seg_path = ade['tmp'] / 'img.png', ade['tmp'] / 'seg.png'
    _write_image(img_path, 300, 400, seed=3)  # resized to 512 x 683
    mmcv.imwrite(np.zeros((300, 400), np.uint8), str(seg_path))
    # mmdiff: the zoo config's test pipeline and test_cfg (slide)
    from mmcv.transforms import Compose
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=str(img_path), seg_map_path=str(seg_path),
                         reduce_zero_label=True, seg_fields=[]))
    with torch.no_grad():
        ours = model.test_step(pseudo_collate([data]))[0].seg_logits.data
    # VPD: mmseg 0.x test pipeline (MultiScaleFlipAug img_scale, Resize
    # keep_ratio = mmcv.imrescale, Normalize to_rgb) + VPDSeg slide
    aug = rec['test_pipeline'][1]
    norm = rec['img_norm_cfg']
    img = mmcv.imread(str(img_path))
    img = mmcv.imrescale(img, tuple(aug['img_scale']))
    img = mmcv.imnormalize(img.astype(np.float32), np.array(norm['mean']),
                           np.array(norm['std']), norm['to_rgb'])
    img = torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()
    test_cfg = rec['model']['test_cfg']
    assert test_cfg['mode'] == 'slide'
    with torch.no_grad():
        ref = vpd_slide_inference(source, img, rec['model']['decode_head'][
            'num_classes'], test_cfg['crop_size'], test_cfg['stride'])
        ref = F.interpolate(ref, size=(300, 400), mode='bilinear',
                            align_corners=False)[0]  # rescale=True
    assert img.shape[-2:] == (512, 683)  # two slide windows
    diff = _rel_diff(ours, ref)
    print(f'ADE20K zoo entry (VPD release layout): logits after slide test '
          f'max |diff| / max |logit| = {diff:.1e} '
          f'(max |logit| {ref.abs().max():.2f})')
    assert diff <= RTOL


def _effective_lr_wd(model, optimizer: dict, paramwise: dict) -> dict:
    """{parameter name: (lr, weight decay, requires_grad)} as mmengine's
    ``DefaultOptimWrapperConstructor`` sets them (the same custom_keys rule
    as mmcv 1.x's ``DefaultOptimizerConstructor``: keys tried longest
    first, ties alphabetically, first substring match wins)."""
    from mmengine.optim import DefaultOptimWrapperConstructor
    ctor = DefaultOptimWrapperConstructor(
        dict(type='OptimWrapper', optimizer=dict(optimizer)),
        dict(paramwise) if paramwise else None)
    names = {id(p): n for n, p in model.named_parameters()}
    out = {}
    for group in ctor(model).optimizer.param_groups:
        for param in group['params']:
            out[names[id(param)]] = (group['lr'], group['weight_decay'],
                                     param.requires_grad)
    return out


def test_ade20k_paramwise_matches_vpd(ade, original_config_yaml):
    """Every parameter of the zoo model trains with the learning rate and
    weight decay VPD's optimizer config gives its source parameter."""
    from mmdiff.converters import convert_state_dict
    rec, source, model, cfg = ade['rec'], ade['source'], ade['model'], \
        ade['cfg']
    # source name of every converted tensor: convert tagged values
    src_names = list(source.state_dict())
    tagged = {n: torch.full_like(t, i + 0.25, dtype=torch.float32)
              for i, (n, t) in enumerate(source.state_dict().items())}
    result = convert_state_dict(tagged, original_config=original_config_yaml)
    to_source = {k: src_names[int(v.flatten()[0])]
                 for k, v in result.state_dict.items()}
    opt = rec['optimizer']
    ref = _effective_lr_wd(
        source, dict(type=opt['type'], lr=opt['lr'],
                     weight_decay=opt['weight_decay']),
        opt['paramwise_cfg'])
    ours = _effective_lr_wd(model, cfg.optim_wrapper.optimizer,
                            cfg.optim_wrapper.get('paramwise_cfg'))
    checked, groups = 0, set()
    for name, (lr, wd, grad) in ours.items():
        src = to_source.get(name)
        assert src is not None, f'{name}: no source parameter'
        src_lr, src_wd, src_grad = ref[src]
        if not (src_grad and src_lr > 0):  # VPD never updates it
            assert not grad or lr == 0, f'{name} trains; VPD: {src} does not'
            continue
        assert grad, f'{name} is frozen; VPD trains {src}'
        assert (lr, wd) == pytest.approx((src_lr, src_wd), rel=1e-9), (
            f'{name}: lr {lr}, wd {wd}; VPD {src}: lr {src_lr}, wd {src_wd}')
        checked += 1
        groups.add((src_lr, src_wd))
    reached = set(to_source[n] for n in ours)
    # ldm's U-Net `out` (norm + conv) is never run by VPD's forward (the
    # features are decoder taps): no gradient, so AdamW never updates it
    unreached = [n for n, (lr, _, g) in ref.items()
                 if g and lr > 0 and n not in reached
                 and '.diffusion_model.out.' not in n]
    assert not unreached, f'VPD trains these, mmdiff has no such: {unreached}'
    print(f'paramwise: {checked} trained parameters, (lr, wd) groups '
          f'{sorted(groups)}')
    assert len(groups) == 3  # head/adapter, U-Net x0.1, U-Net norms
