"""ADE20K zoo entry vs VPD's own model (see conftest.py for the method)."""
import copy

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

ADE_CONFIG = 'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py'


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
def ade(tool, helpers, zoo, zoo_ldm, tmp_path_factory):
    """VPD's ADE20K model from its recipe, converted, and the zoo model."""
    import mmdiff.models  # noqa: F401
    rec = zoo.recipe('vpd_ade20k.yml')['recipe']
    tmp = tmp_path_factory.mktemp('ade')
    head = dict(rec['model']['decode_head'])
    k = head['num_classes']
    taps = helpers.TAP_CHANNELS  # tiny U-Net taps in place of SD1.5's
    neck = dict(rec['model']['neck'],
                in_channels=[taps[0], taps[1] + k, taps[2] + k, taps[3]])
    torch.manual_seed(0)  # module init, before randomise()
    with DefaultScope.overwrite_default_scope('mmseg'):
        source = helpers.VPDSegSource(k, rec['crop_size'][0], neck=neck,
                                      decode_head=head,
                                      unet_params=zoo_ldm[0])
    helpers.randomise(source, seed=11)
    ckpt, emb = zoo.convert(tool, tmp, source.state_dict(), zoo_ldm[1],
                            'vpd_seg_ade')
    with DefaultScope.overwrite_default_scope('mmseg'):
        cfg, model = zoo.zoo_model(ADE_CONFIG, ckpt, emb, 'neck')
    return dict(rec=rec, source=source, ckpt=ckpt, cfg=cfg, model=model,
                tmp=tmp)


def _window_starts(length, crop, stride):
    """Where VPDSeg's slide loop puts its windows along one axis."""
    grids = max(length - crop + stride - 1, 0) // stride + 1
    return [max(min(i * stride + crop, length) - crop, 0)
            for i in range(grids)]


# Images whose long side the test pipeline makes 1024 (short side 512, one
# window): three windows along it at 0, stride, 512, so that any other
# stride moves or drops the middle one; one wide, one tall, for both axes.
SLIDE_IMAGES = ((300, 600), (600, 300))


@pytest.mark.parametrize('hw', SLIDE_IMAGES, ids=['wide', 'tall'])
def test_vpd_ade20k_release_whole_model(ade, zoo, hw):
    """ADE20K: logits after the full test protocol on one image file."""
    rec, source, model, cfg = ade['rec'], ade['source'], ade['model'], \
        ade['cfg']
    img_path = ade['tmp'] / f'img_{hw[0]}x{hw[1]}.png'
    seg_path = ade['tmp'] / f'seg_{hw[0]}x{hw[1]}.png'
    zoo.write_image(img_path, *hw, seed=3)
    mmcv.imwrite(np.zeros(hw, np.uint8), str(seg_path))
    # mmdiff: the zoo config's test pipeline and test_cfg (slide)
    from mmcv.transforms import Compose
    pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    data = pipeline(dict(img_path=str(img_path), seg_map_path=str(seg_path),
                         reduce_zero_label=True, seg_fields=[]))
    with torch.no_grad():
        ours = model.test_step(pseudo_collate([data]))[0].seg_logits.data
    # VPD: mmseg 0.x test pipeline (MultiScaleFlipAug img_scale, Resize
    # keep_ratio = mmcv.imrescale, Normalize to_rgb) + VPDSeg slide
    img = zoo.mmseg0x_test_image(img_path, rec)
    test_cfg = rec['model']['test_cfg']
    assert test_cfg['mode'] == 'slide'
    crop, stride = test_cfg['crop_size'], test_cfg['stride']
    # three windows along the long axis, placed by the stride
    axis = 0 if hw[0] > hw[1] else 1
    starts = _window_starts(img.shape[2 + axis], crop[axis], stride[axis])
    assert len(starts) == 3, starts
    assert starts != _window_starts(img.shape[2 + axis], crop[axis], 400)
    with torch.no_grad():
        ref = vpd_slide_inference(source, img, rec['model']['decode_head'][
            'num_classes'], crop, stride)
        ref = F.interpolate(ref, size=hw, mode='bilinear',
                            align_corners=False)[0]  # rescale=True
    diff = zoo.rel_diff(ours, ref)
    print(f'ADE20K zoo entry (VPD release layout): logits after slide test '
          f'({tuple(img.shape[2:])}, windows at {starts}) '
          f'max |diff| / max |logit| = {diff:.1e} '
          f'(max |logit| {ref.abs().max():.2f})')
    assert diff <= zoo.RTOL


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
