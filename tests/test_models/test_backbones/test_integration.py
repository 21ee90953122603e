"""mmdiff.VPD inside mmseg EncoderDecoder / DepthEstimator and mmdet
Mask R-CNN, built from the demo configs in configs/demo (the host's
default_scope, ``type='mmdiff.VPD'`` and ``custom_imports``, as user configs
have), on random weights and 64x64 inputs.
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

from mmdiff.apis import check_in_channels
from mmdiff.models.backbones import VPD

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', '..', 'configs',
                   'demo')
SEG = 'vpd_tiny-fpn_demo-seg.py'
DEPTH = 'vpd_tiny-depth_demo-nyu.py'
MASK_RCNN = 'mask-rcnn_vpd_tiny-fpn_demo-coco.py'


def _config(name):
    """A demo config on random weights (the demo VAE is made by a training
    hook) and 64x64 inputs (mmseg's preprocessor pads to its size)."""
    cfg = Config.fromfile(osp.join(CONFIGS, name))
    cfg.model.backbone.pop('vae_weights')
    if cfg.default_scope == 'mmseg':
        cfg.model.data_preprocessor.size = (64, 64)
    return cfg


def _build(name):
    from mmengine.registry import MODELS
    from mmengine.utils import import_modules_from_strings
    cfg = _config(name)
    import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


@pytest.fixture(autouse=True)
def _restore_scope():
    yield
    DefaultScope._instance_dict.clear()


def _seg_inputs(num_classes, size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, size, size), generator=gen,
                                    dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(
            0, num_classes, (1, size, size), generator=gen))
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmseg_encoder_decoder_train_and_predict():
    from mmengine.optim import OptimWrapper
    cfg, model = _build(SEG)
    assert isinstance(model.backbone, VPD)
    assert list(model.backbone.out_channels) == cfg.model.neck.in_channels
    check_in_channels(model)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01))
    data = _seg_inputs(cfg.num_classes)
    gamma = model.backbone.conditioner.text_adapter.gamma.detach().clone()
    losses = model.train_step(data, optim)
    assert torch.isfinite(losses['decode.loss_ce'])
    adapter = model.backbone.conditioner.text_adapter
    assert not torch.equal(gamma, adapter.gamma)
    assert all(p.grad is None for p in model.backbone.vae.parameters())
    preds = model.val_step(_seg_inputs(cfg.num_classes))
    assert preds[0].pred_sem_seg.data.shape == (1, 64, 64)


def test_mmdet_mask_rcnn_loss_and_predict():
    from mmdet.testing import demo_mm_inputs
    cfg, model = _build(MASK_RCNN)
    assert list(model.backbone.out_channels) == cfg.model.neck.in_channels
    check_in_channels(model)
    packed = demo_mm_inputs(
        batch_size=2, image_shapes=[(3, 96, 80), (3, 64, 64)],
        num_items=[2, 1], num_classes=cfg.num_classes, with_mask=True)
    data = model.data_preprocessor(packed, True)
    model.train()
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.conditioner.text_adapter.gamma.grad is not None
    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, False),
                        mode='predict')
    assert len(results) == 2
    assert hasattr(results[0].pred_instances, 'masks')


def test_neck_channel_mismatch_names_the_fix():
    from mmengine.registry import MODELS
    cfg = _config(SEG)
    init_default_scope(cfg.default_scope)
    # embeddings for 6 classes, neck still written for K=4
    cfg.model.backbone.class_embeddings = dict(num_classes=6, dim=32)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match=r'neck.in_channels=\[32, 70, 70, '
                       r'64\]'):
        check_in_channels(model)


def _depth_inputs(scene_ids, size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for scene in scene_ids:
        inputs.append(torch.randint(0, 256, (3, size, size), generator=gen,
                                    dtype=torch.uint8))
        sample = SegDataSample()
        sample.gt_depth_map = PixelData(
            data=torch.rand(1, size, size, generator=gen) * 9 + 0.5)
        sample.set_metainfo(dict(img_shape=(size, size),
                                 ori_shape=(size, size),
                                 pad_shape=(size, size),
                                 category_id=scene))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmseg_depth_estimator_selects_scene_embeddings():
    from mmengine.optim import OptimWrapper
    cfg, model = _build(DEPTH)
    backbone = model.backbone
    seen = []
    handle = backbone.unet.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append(kwargs['encoder_hidden_states']),
        with_kwargs=True)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.01))
    losses = model.train_step(_depth_inputs([1, -1]), optim)
    assert all(torch.isfinite(v) for v in losses.values())
    preds = model.val_step(_depth_inputs([3, -1]))
    handle.remove()
    assert preds[0].pred_depth_map.data.shape == (1, 64, 64)
    # each image was conditioned on its scene's row; -1 on the mean row
    emb = backbone.conditioner.class_embeddings.detach()
    adapter = backbone.conditioner.text_adapter
    train_cond, val_cond = seen[0].detach(), seen[1].detach()
    assert train_cond.shape == (2, 1, 32)
    with torch.no_grad():
        assert torch.allclose(val_cond[0, 0], adapter(emb[3]), atol=1e-6)
        assert torch.allclose(val_cond[1, 0], adapter(emb.mean(0)),
                              atol=1e-6)
