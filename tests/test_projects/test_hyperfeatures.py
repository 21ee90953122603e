"""projects/Hyperfeatures: multi-timestep / noise-ensemble VPD features."""
import os.path as osp

import pytest
import torch

from mmdiff.testing import tiny_sd_model
from projects.Hyperfeatures.hyperfeatures import HyperfeatureVPD

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'projects', 'Hyperfeatures', 'configs')
DEMO = osp.join(CONFIGS, 'hyperfeatures_vpd_tiny-fpn_demo-seg.py')


CLASSES = dict(num_classes=3, dim=32)


def test_passes_mixing_and_cost(capsys):
    model = tiny_sd_model(HyperfeatureVPD, class_embeddings=CLASSES,
                          timesteps=(1, 200), seeds=(0, 7))
    assert model.passes == [(1, 0), (1, 7), (200, 0), (200, 7)]
    assert model.num_passes == 4
    assert '4 passes' in model.cost_summary()
    calls = []
    model.unet.register_forward_pre_hook(lambda m, a: calls.append(
        int(a[1][0])))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    outs = model(x)
    assert calls == [1, 1, 200, 200]  # one U-Net pass each
    assert [o.shape[1] for o in outs] == list(model.out_channels)

    # equal logits: the mean of the single-pass features (same weights)
    from mmdiff.models.backbones import VPD
    single = []
    for t, s in model.passes:
        vpd = tiny_sd_model(VPD, class_embeddings=CLASSES, noise='seeded',
                            timestep=t, noise_seed=s)
        vpd.load_state_dict(model.state_dict(), strict=False)
        with torch.no_grad():
            single.append(vpd(x))
    with torch.no_grad():
        mixed = model(x)
    for i, feat in enumerate(mixed):
        mean = torch.stack([f[i] for f in single]).mean(0)
        assert torch.allclose(feat, mean, atol=1e-5)

    # the mixing weights learn
    sum(o.sum() for o in model(x)).backward()
    assert model.mix_logits.grad is not None and model.mix_logits.grad.any()
    assert torch.allclose(model.mix_weights().sum(-1), torch.ones(4))


def test_bottleneck_channels():
    model = tiny_sd_model(HyperfeatureVPD, class_embeddings=CLASSES,
                          timesteps=(1, 100), bottleneck=16)
    assert model.out_channels == (16, ) * 4
    assert [i['num_chs'] for i in model.feature_info] == [16] * 4
    outs = model(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert [o.shape[1] for o in outs] == [16] * 4
    with pytest.raises(ValueError, match='at least one'):
        tiny_sd_model(HyperfeatureVPD, class_embeddings=CLASSES, timesteps=())


def test_demo_builds_and_forwards(build_from_config):
    cfg, model = build_from_config(DEMO)
    assert type(model.backbone).__name__ == 'HyperfeatureVPD'
    assert list(cfg.model.neck.in_channels) == list(
        model.backbone.out_channels)
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 96, 96) * 2 - 1)
    assert len(feats) == 4


def test_demo_trains_and_tests(train_test, tmp_path):
    log, metrics = train_test(DEMO, str(tmp_path))
    assert 'HyperfeatureVPD: 3 passes' in log  # the cost is printed
    assert 'Iter(train) [4/4]' in log
    assert {'mIoU', 'aAcc'} <= set(metrics)
