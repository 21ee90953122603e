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
from mmengine.config import Config, ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
RECIPES = osp.join(ROOT, 'tests', 'data', 'recipes')
TOOL = osp.join(ROOT, 'tools', 'model_converters', 'vpd_to_mmdiff.py')
ADE_CONFIG = 'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py'
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
def ade(tool, helpers, zoo_ldm, tmp_path_factory):
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
                                      decode_head=head,
                                      unet_params=zoo_ldm[0])
    helpers.randomise(source, seed=11)
    ckpt, emb = _convert(tool, tmp, source.state_dict(), zoo_ldm[1],
                         'vpd_seg_ade')
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


def test_ade20k_paramwise_matches_vpd(ade, zoo_ldm):
    """Every parameter of the zoo model trains with the learning rate and
    weight decay VPD's optimizer config gives its source parameter."""
    from mmdiff.converters import convert_state_dict
    rec, source, model, cfg = ade['rec'], ade['source'], ade['model'], \
        ade['cfg']
    # source name of every converted tensor: convert tagged values
    src_names = list(source.state_dict())
    tagged = {n: torch.full_like(t, i + 0.25, dtype=torch.float32)
              for i, (n, t) in enumerate(source.state_dict().items())}
    result = convert_state_dict(tagged, original_config=zoo_ldm[1])
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


# --------------------------------------------------------------------------
# NYU: mmseg's VPD + VPDDepthHead (mmseg's own code), slide_flip test
# --------------------------------------------------------------------------
NYU_CONFIG = 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py'
NYU_VPD_CONFIG = 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py'
# Depth-head widths for the numerics (VPD / mmseg: 192, 1536, (32, 32, 32),
# whose last 3x3 conv at full resolution alone costs ~150 GFLOP per window;
# the released widths are checked by test_real_size.py's strict loads).
TINY_HEAD = dict(embed_dim=8, feature_dim=64, num_deconv_filters=(16, 16, 16))


def _spread(conv, factor=30):
    """Scale the last conv so that depth spans its range (not ~max/2)."""
    with torch.no_grad():
        conv.weight.mul_(factor)


def _nyu_files(root, rel_img, h=480, w=640, seed=5):
    """One NYU test image + depth map under ``root`` at ``images/test`` /
    ``annotations/test`` (the data_prefix of mmseg's and mmdiff's configs)."""
    img = root / 'images' / 'test' / rel_img
    depth = root / 'annotations' / 'test' / rel_img.replace('.jpg', '.png')
    img.parent.mkdir(parents=True, exist_ok=True)
    depth.parent.mkdir(parents=True, exist_ok=True)
    _write_image(img, h, w, seed)
    mmcv.imwrite(np.full((h, w), 2000, np.uint16), str(depth))
    return str(img)


def _first_sample(dataset_cfg, root):
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(dict(dataset_cfg, data_root=str(root)))
    assert len(dataset) == 1
    return dataset[0], dataset.get_data_info(0)['category_id']


def test_mmseg_nyu_release_whole_model(tool, helpers, zoo_ldm, ldm_target,
                                       tmp_path):
    """NYU zoo entry: mmseg's own DepthEstimator(VPD, VPDDepthHead) from its
    recipe vs the zoo config, each with its data set, pipeline and
    slide_flip test on the same file."""
    from mmseg.registry import MODELS
    rec = recipe('mmseg_vpd_nyu.yml')['recipe']
    model_rec = rec['model']
    class_file = str(tmp_path / 'nyu_class_embeddings.pth')
    gen = torch.Generator().manual_seed(7)
    torch.save(torch.randn(model_rec['backbone']['num_scenes'], helpers.DIM,
                           generator=gen), class_file)
    source = MODELS.build(dict(
        type=model_rec['type'],
        data_preprocessor=model_rec['data_preprocessor'],
        backbone=dict(
            type='VPD', diffusion_cfg=dict(
                target=ldm_target, params=dict(unet_params=zoo_ldm[0])),
            class_embed_path=class_file,
            class_embed_select=model_rec['backbone']['class_embed_select'],
            pad_shape=model_rec['backbone']['pad_shape'],
            unet_cfg=dict(use_attn=model_rec['backbone']['use_attn'])),
        decode_head=dict(model_rec['decode_head'],
                         in_channels=helpers.TAP_CHANNELS, **TINY_HEAD),
        test_cfg=ConfigDict(_tuples(model_rec['test_cfg']))))
    torch.manual_seed(0)
    source.init_weights()
    helpers.randomise(source, seed=12)
    _spread(source.decode_head.depth_pred_layer[2])
    with torch.no_grad():
        source.backbone.gamma.uniform_(0, 0.5)
    ckpt, emb = _convert(tool, tmp_path, {'state_dict': source.state_dict()},
                         zoo_ldm[1], 'mmseg_nyu')
    cfg, model = _zoo_model(NYU_CONFIG, ckpt, emb, 'decode_head',
                            **TINY_HEAD)

    root = tmp_path / 'nyu'
    _nyu_files(root, 'study_room_0004_00045.jpg')
    src_ds = dict(type='NYUDataset', test_mode=True,
                  data_prefix=dict(img_path='images/test',
                                   depth_map_path='annotations/test'),
                  pipeline=_tuples(rec['test_pipeline']))
    ref_data, ref_id = _first_sample(src_ds, root)
    our_data, our_id = _first_sample(cfg.test_dataloader.dataset, root)
    classes = recipe('vpd_nyu_depth.yml')['recipe']['class_list']
    assert ref_id == our_id == classes.index('study_room')  # mmseg's rule
    with torch.no_grad():
        ref = source.test_step(pseudo_collate([ref_data]))[0]
        ours = model.test_step(pseudo_collate([our_data]))[0]
    ref, ours = ref.pred_depth_map.data, ours.pred_depth_map.data
    assert ref.shape[-2:] == (480, 640)  # two slide windows, flipped
    diff = _rel_diff(ours, ref)
    print(f'NYU zoo entry (mmseg release layout): depth after slide_flip '
          f'max |diff| / max depth = {diff:.1e} (depth {ref.min():.2f}.. '
          f'{ref.max():.2f} m)')
    assert diff <= RTOL
    assert ref.std() > 0.1


# --------------------------------------------------------------------------
# NYU: VPD's own VPDDepth, VPD's scene rule and shift-window + flip test
# --------------------------------------------------------------------------
def vpd_scene_id(img_path, class_list):
    """depth/dataset/nyudepthv2.py: first listed name in
    '<folder>_<file>' (VPD asserts one is found)."""
    parts = img_path.split('/')
    filename = parts[-2] + '_' + parts[-1]
    ids = [i for i, name in enumerate(class_list) if name in filename]
    assert ids
    return ids[0]


def vpd_depth_forward(source, x01, class_ids, pad):
    """VPDDepth.forward: [0, 1] -> [-1, 1], zero-pad 480 -> 512, U-Net
    features, encoder convs, border crop, decoder, last layer."""
    b, c, h, w = x01.shape
    x = x01 * 2.0 - 1.0
    assert (h, w) == (pad['from'], pad['from'])
    padded = x.new_zeros(b, c, pad['to'], pad['to'])
    padded[:, :, :h, :w] = x
    outs = source.features(padded, class_ids)
    enc = source.encoder
    feats = [outs[0], outs[1], torch.cat(
        [outs[2], F.interpolate(outs[3], scale_factor=2)], dim=1)]
    feat = enc.out_layer(torch.cat(
        [enc.layer1(feats[0]), enc.layer2(feats[1]), feats[2]], dim=1))
    b_crop = pad['border_crop']
    feat = feat[:, :, :-b_crop, :-b_crop]
    out = source.decoder.conv_layers(source.decoder.deconv_layers(feat))
    out = F.interpolate(out, scale_factor=2, mode='bilinear',
                        align_corners=False)
    out = F.interpolate(out, scale_factor=2, mode='bilinear',
                        align_corners=False)
    return torch.sigmoid(source.last_layer_depth(out)) * source.max_depth


def vpd_shift_flip_test(source, x01, class_id, rec):
    """depth/test.py with --shift_window_test --shift_size N --flip_test."""
    test = rec['test']
    bs, _, h, w = x01.shape
    interval = (w - h) // (test['shift_size'] - 1)
    windows = [x01[..., i * interval:i * interval + h]
               for i in range(test['shift_size'])]
    masks = x01.new_zeros((bs, 1, h, w))
    for i in range(test['shift_size']):
        masks[..., i * interval:i * interval + h] += 1
    inputs = torch.cat(windows)
    inputs = torch.cat([inputs, torch.flip(inputs, [3])])
    ids = torch.tensor([class_id] * inputs.shape[0])
    pred = vpd_depth_forward(source, inputs, ids, rec['input_pad'])
    half = pred.shape[0] // 2
    pred = (pred[:half] + torch.flip(pred[half:], [3])) / 2.0
    out = x01.new_zeros((bs, 1, h, w))
    for i in range(test['shift_size']):
        out[..., i * interval:i * interval + h] += pred[i:i + 1]
    return out / masks


def test_vpd_depth_release_whole_model(tool, helpers, zoo_ldm, tmp_path):
    """VPD's own NYU checkpoint layout in the zoo config made for it: VPD's
    scene rule, and VPD's shift-window + flip test vs mmseg's slide_flip."""
    rec = recipe('vpd_nyu_depth.yml')['recipe']
    # VPD's widths (embed 192, features 1536, filters 32) cost ~1 TFLOP
    # here: the depth-head widths are tiny (TINY_HEAD), the rest is VPD's
    assert rec['feature_dim'] == 8 * rec['embed_dim']
    assert len(rec['num_filters']) == len(TINY_HEAD['num_deconv_filters'])
    head = dict(TINY_HEAD, max_depth=rec['max_depth'])
    assert rec['deconv_kernels'] == [2, 2, 2]  # the stand-in's ConvT(2, 2)
    source = helpers.randomise(
        helpers.VPDDepthSource(num_scenes=len(rec['class_list']), head=head,
                               unet_params=zoo_ldm[0]),
        seed=13)
    _spread(source.last_layer_depth[2], 100)
    state = {'module.' + k: v for k, v in source.state_dict().items()}
    ckpt, emb = _convert(tool, tmp_path, {'model': state}, zoo_ldm[1],
                         'vpd_depth')
    cfg, model = _zoo_model(NYU_VPD_CONFIG, ckpt, emb, 'decode_head',
                            **TINY_HEAD)

    root = tmp_path / 'nyu'
    img_path = _nyu_files(root, 'study_room_0004/rgb_00045.jpg')
    data, our_id = _first_sample(cfg.test_dataloader.dataset, root)
    ref_id = vpd_scene_id(img_path, rec['class_list'])
    assert our_id == ref_id == rec['class_list'].index('study')  # VPD's rule
    with torch.no_grad():
        ours = model.test_step(pseudo_collate([data]))[0].pred_depth_map.data
        img = mmcv.imread(img_path, channel_order='rgb')  # cv2 BGR -> RGB
        x01 = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        ref = vpd_shift_flip_test(source, x01, ref_id, rec)[0]
    diff = _rel_diff(ours, ref)
    print(f'NYU zoo entry (VPD release layout): depth after VPD shift-window '
          f'+ flip vs slide_flip max |diff| / max depth = {diff:.1e} '
          f'(depth {ref.min():.2f}..{ref.max():.2f} m)')
    assert diff <= RTOL
    assert ref.std() > 0.1


def test_narrower_head_is_reported(ade):
    """The converted VPD file in a config with mmdiff's former head width
    (channels=128): LoadCoverageHook's check names the unloaded tensors."""
    from mmseg.registry import MODELS

    from mmdiff.engine.hooks.load_coverage_hook import (coverage_message,
                                                        unloaded_tensors)
    head_cfg = copy.deepcopy(ade['cfg'].model.decode_head)
    head_cfg.channels = 128
    with torch.device('meta'):
        head = MODELS.build(head_cfg)
    state = {k: v for k, v in ade['model'].state_dict().items()
             if not k.startswith('decode_head.')}
    state.update({'decode_head.' + k: v
                  for k, v in head.state_dict().items()})
    unloaded, totals = unloaded_tensors(state, ade['ckpt']['state_dict'])
    assert set(unloaded) == {'decode_head'}
    n = len(unloaded['decode_head'])
    assert 0 < n < totals['decode_head']
    message = coverage_message(unloaded, totals, 'load_from vpd.pth')
    print(message)
    assert f'decode_head: {n} of {totals["decode_head"]}' in message
