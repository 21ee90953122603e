"""vpd_to_mmdiff on tiny random checkpoints in VPD's and mmseg's layouts.

Each source model is written to disk in its own layout, converted with the
command-line tool, loaded strictly (zero missing, zero unexpected keys) into
the mmdiff model built from the matching (tiny) config, and run on the same
input as the source model.
"""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import ConfigDict

from mmdiff.testing import demo_images

TOL = 1e-4
K = 5  # segmentation classes
SIZE = 128  # multiple of 64: no padding on either side


@pytest.fixture(autouse=True)
def _scope():
    import mmdiff.models  # noqa: F401  (registers mmdiff.VPD)
    from mmengine.registry import DefaultScope, init_default_scope
    init_default_scope('mmseg')
    yield
    DefaultScope._instance_dict.clear()


def _convert(tool, tmp_path, src_obj, yaml_path, name, capsys=None):
    src = str(tmp_path / f'{name}.pth')
    dst = str(tmp_path / f'{name}_mmdiff.pth')
    emb = str(tmp_path / f'{name}_class_embeddings.pth')
    torch.save(src_obj, src)
    argv = [src, dst, '--original-config', yaml_path,
            '--save-class-embeddings', emb]
    assert tool.main(argv) == 0
    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    leftovers = [f for f in os.listdir(tmp_path) if '.tmp-' in f]
    assert not leftovers
    return ckpt, emb


def _load_strict(model, state_dict):
    result = model.load_state_dict(state_dict, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []


def _max_diff(a, b):
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _backbone_cfg(meta, emb_path, **kwargs):
    return dict(type='mmdiff.VPD', pretrained=None, unet_cfg=meta['unet_cfg'],
                vae_cfg=meta['vae_cfg'], class_embeddings=emb_path, **kwargs)


def test_vpd_seg(tool, tmp_path, helpers, original_config_yaml, capsys):
    from mmseg.registry import MODELS
    source = helpers.randomise(helpers.VPDSegSource(K, SIZE), seed=0)
    ckpt, emb = _convert(tool, tmp_path, source.state_dict(),
                         original_config_yaml, 'vpd_seg')
    out = capsys.readouterr().out
    assert 'layout: vpd_seg' in out and 'DDPM schedule buffers' in out
    meta = ckpt['meta']['converted_from']
    assert meta['layout'] == 'vpd_seg'
    assert meta['dropped'] == {
        'VAE post_quant_conv (mmdiff uses the encoder only)': 2,
        'DDPM schedule buffers (not weights)': len(helpers.SCHEDULE)}
    model = MODELS.build(dict(
        type='EncoderDecoder',
        backbone=_backbone_cfg(meta, emb, use_attn=True),
        neck=dict(type='FPN', in_channels=[32, 64 + K, 64 + K, 64],
                  out_channels=16, num_outs=4),
        decode_head=dict(
            type='FPNHead', in_channels=[16] * 4, in_index=[0, 1, 2, 3],
            feature_strides=[8, 16, 32, 64], channels=16, dropout_ratio=0.1,
            num_classes=K, norm_cfg=dict(type='BN'), align_corners=False),
        test_cfg=ConfigDict(mode='whole')))
    _load_strict(model, ckpt['state_dict'])
    model.eval()
    images = demo_images(2, SIZE, seed=1)
    with torch.no_grad():  # each U-Net runs once
        ref_feats = source.extract_feat(images)
        ref_logits = source.decode_head(source.neck(ref_feats))
        feats = model.backbone(images)
        logits = model.decode_head(model.neck(feats))
    assert list(model.backbone.out_channels) == [32, 64 + K, 64 + K, 64]
    for i, (a, b) in enumerate(zip(feats, ref_feats)):
        diff = _max_diff(a, b)
        print(f'vpd_seg feature {i}: max abs diff {diff:.2e}')
        assert diff <= TOL
    diff = _max_diff(logits, ref_logits)
    scale = ref_logits.abs().max().item()
    print(f'vpd_seg logits: max abs diff {diff:.2e} (max |x| {scale:.2f})')
    # logits reach ~20 here: fp32 rounding grows with them
    assert diff <= TOL * max(1.0, scale / 10)


def _depth_estimator(meta, emb, **head):
    from mmseg.registry import MODELS
    return MODELS.build(dict(
        type='DepthEstimator',
        data_preprocessor=dict(
            type='SegDataPreProcessor', mean=[127.5] * 3, std=[127.5] * 3,
            bgr_to_rgb=True),
        backbone=_backbone_cfg(meta, emb, class_embed_select=True,
                               use_attn=False),
        decode_head=dict(type='VPDDepthHead', **head),
        test_cfg=ConfigDict(mode='whole')))


def test_vpd_depth(tool, tmp_path, helpers, original_config_yaml, capsys):
    source = helpers.randomise(helpers.VPDDepthSource(), seed=1)
    _spread(source.last_layer_depth)
    ckpt, emb = _convert(tool, tmp_path, {'model': source.state_dict()},
                         original_config_yaml, 'vpd_depth')
    out = capsys.readouterr().out
    assert 'layout: vpd_depth' in out and 'placeholders' in out
    meta = ckpt['meta']['converted_from']
    assert meta['placeholders'] == [
        f'backbone.unet.{n}' for n in ('conv_norm_out.weight',
                                       'conv_norm_out.bias',
                                       'conv_out.weight', 'conv_out.bias')]
    assert meta['class_embeddings_shape'] == [27, helpers.DIM]
    model = _depth_estimator(meta, emb, **helpers.DEPTH_HEAD)
    _load_strict(model, ckpt['state_dict'])
    model.eval()
    images, ids = demo_images(2, SIZE, seed=1), torch.tensor([3, 20])
    with torch.no_grad():
        ref_feats = source.features(images, ids)
        ref = source.head(ref_feats)
        feats = model.backbone(images, class_ids=ids)
        depth = model.decode_head(feats)
    for i, (a, b) in enumerate(zip(feats, ref_feats)):
        diff = _max_diff(a, b)
        print(f'vpd_depth feature {i}: max abs diff {diff:.2e}')
        assert diff <= TOL
    diff = _max_diff(depth, ref)
    print(f'vpd_depth depth: max abs diff {diff:.2e} '
          f'(range {ref.min():.2f}..{ref.max():.2f})')
    assert diff <= TOL
    _assert_varied(ref)


def _spread(pred_layer):
    """Scale the last conv so that depth spans its range (not ~max/2)."""
    with torch.no_grad():
        pred_layer[2].weight.mul_(30)


def _assert_varied(depth):
    """The depth map is neither constant nor saturated at 0 / max_depth."""
    assert depth.std() > 0.1
    assert ((depth > 0.05) & (depth < 9.95)).float().mean() > 0.5


def _depth_batch(n=2, with_ids=False):
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(2)
    inputs, samples = [], []
    for i in range(n):
        inputs.append(torch.randint(0, 256, (3, SIZE, SIZE), generator=gen,
                                    dtype=torch.uint8))
        sample = SegDataSample()
        info = dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE),
                    pad_shape=(SIZE, SIZE))
        if with_ids:
            info['category_id'] = [4, 17][i]
        sample.set_metainfo(info)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmseg_vpd_depth(tool, tmp_path, helpers, original_config_yaml,
                         ldm_target, capsys):
    from mmseg.registry import MODELS
    class_file = str(tmp_path / 'nyu_scenes.pth')
    gen = torch.Generator().manual_seed(5)
    torch.save(torch.randn(27, helpers.DIM, generator=gen), class_file)
    head = dict(type='VPDDepthHead', **helpers.DEPTH_HEAD)
    preproc = dict(type='SegDataPreProcessor', mean=[127.5] * 3,
                   std=[127.5] * 3, bgr_to_rgb=True)
    source = MODELS.build(dict(
        type='DepthEstimator', data_preprocessor=preproc,
        backbone=dict(
            type='VPD', diffusion_cfg=dict(target=ldm_target),
            class_embed_path=class_file, class_embed_select=True,
            unet_cfg=dict(use_attn=False)),
        decode_head=head, test_cfg=ConfigDict(mode='whole')))
    torch.manual_seed(0)
    source.init_weights()
    helpers.randomise(source, seed=2)
    _spread(source.decode_head.depth_pred_layer)
    with torch.no_grad():
        source.backbone.gamma.uniform_(0, 0.5)
    assert source.backbone.class_embeddings.shape == (28, helpers.DIM)

    ckpt, emb = _convert(tool, tmp_path, {'state_dict': source.state_dict(),
                                          'meta': {'mmseg_version': '1.2.2'}},
                         original_config_yaml, 'mmseg_vpd')
    out = capsys.readouterr().out
    assert 'layout: mmseg_vpd' in out and 'mean of the others' in out
    meta = ckpt['meta']['converted_from']
    assert meta['class_embeddings_shape'] == [27, helpers.DIM]
    assert meta['dropped'] == {
        'VAE decoder (mmdiff uses the encoder only)':
        len([k for k in source.state_dict()
             if k.startswith('backbone.encoder_vq.decoder.')]),
        'VAE post_quant_conv (mmdiff uses the encoder only)': 2}
    model = _depth_estimator(meta, emb, **helpers.DEPTH_HEAD)
    _load_strict(model, ckpt['state_dict'])
    model.eval()

    # end to end: data preprocessor -> backbone -> head -> postprocess,
    # without scene ids (both use the mean-embedding row) and with them
    # (DepthEstimator passes (inputs, category ids) to the backbone)
    for with_ids in (False, True):
        data = _depth_batch(with_ids=with_ids)
        with torch.no_grad():
            ref = source.test_step(data)
            ours = model.test_step(data)
        for r, o in zip(ref, ours):
            diff = _max_diff(o.pred_depth_map.data, r.pred_depth_map.data)
            print(f'mmseg_vpd end to end (scene ids: {with_ids}): max abs '
                  f'diff {diff:.2e}')
            assert diff <= TOL
            _assert_varied(r.pred_depth_map.data)
    # with scene ids: mmseg's backbone takes (x, ids), ours class_ids=ids
    images, ids = demo_images(1, SIZE, seed=1), torch.tensor([17])
    with torch.no_grad():
        ref_feats = source.backbone((images, ids))
        feats = model.backbone(images, class_ids=ids)
        ref_depth = source.decode_head(ref_feats)
        depth = model.decode_head(feats)
    for i, (a, b) in enumerate(zip(feats, ref_feats)):
        diff = _max_diff(a, b)
        print(f'mmseg_vpd feature {i} (scene ids): max abs diff {diff:.2e}')
        assert diff <= TOL
    diff = _max_diff(depth, ref_depth)
    print(f'mmseg_vpd depth (scene ids): max abs diff {diff:.2e}')
    assert diff <= TOL
    _assert_varied(ref_depth)
