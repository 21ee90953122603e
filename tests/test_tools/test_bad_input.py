"""Bad input: one clear error naming the fix, for each case of issue 6.

Most checks run in-process on the tiny SD-shaped VPD (seconds); two runs of
``tools/train.py`` / ``tools/test.py`` (concurrent) show that the entry
points refuse a bad config and a mismatched checkpoint before training or
testing starts.
"""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope
from torch import nn

from mmdiff.apis import check_before_run, check_checkpoint, check_model
from mmdiff.models.backbones import VPD
from mmdiff.models.diffusion import tiny_unet_cfg
from mmdiff.testing import tiny_vpd
from mmdiff.utils.image_size import check_image_size

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')





@pytest.fixture(autouse=True)
def _restore_scope():
    yield
    DefaultScope._instance_dict.clear()


def _vpd(**kwargs) -> VPD:
    return tiny_vpd(**kwargs)


def _seg_model(**backbone):
    from mmengine.registry import MODELS
    import mmdiff.models  # noqa: F401
    cfg = Config.fromfile(SEG_CFG)
    cfg.model.backbone.update(backbone)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    return MODELS.build(cfg.model), cfg


# -- images -----------------------------------------------------------------
@pytest.mark.parametrize('channels', [1, 4])
def test_image_channels(channels):
    backbone = _vpd()
    with pytest.raises(ValueError, match=r'expects images \(B, 3, H, W\).*'
                       r'Fix: use RGB inputs'):
        backbone(torch.zeros(1, channels, 64, 64))


def test_image_smaller_than_unet_minimum():
    backbone = _vpd()
    minimum = backbone.vae_factor  # one latent pixel: 8 for SD
    outs = backbone(torch.zeros(1, 3, minimum, 2 * minimum))  # padded: runs
    assert outs[-1].shape[-2:] == (1, 1)
    for size in [(minimum // 2, 64), (64, minimum - 1)]:
        with pytest.raises(ValueError, match=rf'{size[0]}x{size[1]} pixels is'
                           rf' smaller than the U-Net\'s minimum {minimum}x'
                           rf'{minimum}.*Fix'):
            backbone(torch.zeros(1, 3, *size))
    # stricter: no padding at the U-Net's coarsest level
    strict = backbone.size_divisor
    with pytest.raises(ValueError, match=rf'minimum {strict}x{strict}'):
        check_image_size(backbone, torch.zeros(1, 3, strict - 1, strict),
                         minimum=strict)


# -- class embeddings ---------------------------------------------------------
def test_class_embeddings_wrong_dim():
    dim = tiny_unet_cfg()['cross_attention_dim']
    with pytest.raises(ValueError, match=rf'dim {dim + 8} but the model\'s '
                       rf'text width is {dim} \(U-Net: cross_attention_dim;'
                       r'.*\)\. Fix'):
        _vpd(class_embeddings=torch.randn(4, dim + 8))


def test_class_embeddings_wrong_k():
    model, cfg = _seg_model(class_embeddings=dict(num_classes=6, dim=32))
    with pytest.raises(ValueError, match=r'K=6 class embeddings .* '
                       r'decode_head.num_classes=4\. Fix'):
        check_model(model)


def test_neck_in_channels_say_the_right_numbers():
    model, cfg = _seg_model()
    check_model(model)  # the demo config is consistent
    right = list(model.backbone.out_channels)
    model.neck.in_channels = [c - 4 if i in (1, 2) else c
                              for i, c in enumerate(right)]
    with pytest.raises(ValueError, match=rf'Fix: set neck.in_channels='
                       rf'{re_list(right)}'):
        check_model(model)


P2_CFG = osp.join(REPO, 'configs', 'demo',
                  'mask-rcnn_vpd_tiny-p2-fpn_demo-coco-small.py')


def _p2_model():
    from mmengine.registry import MODELS
    import mmdiff.models  # noqa: F401
    cfg = Config.fromfile(P2_CFG)
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


def test_strides_must_be_those_of_the_levels_read():
    """With vae_taps the first level has stride 4: anchors or RoI
    extractors written for stride 8 (they would train without an error)
    are refused, naming both lists."""
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    model = _p2_model()
    check_model(model)  # the P2 demo is consistent
    good = model.roi_head.bbox_roi_extractor.featmap_strides
    model.roi_head.bbox_roi_extractor.featmap_strides = [8, 16, 32, 64]
    with pytest.raises(ValueError, match=r'bbox_roi_extractor.featmap_strides'
                       r'=\[8, 16, 32, 64\] but the levels it reads have '
                       r'strides \[4, 8, 16, 32\]'):
        check_model(model)
    model.roi_head.bbox_roi_extractor.featmap_strides = good
    model.rpn_head.prior_generator = AnchorGenerator(
        strides=[8, 16, 32, 64, 128], ratios=[1.0], scales=[2])
    with pytest.raises(ValueError, match=r'rpn_head.prior_generator.strides'
                       r'=\[8, 16, 32, 64, 128\]'):
        check_model(model)
    # mmseg's FPNHead reads only the ratios of its strides
    seg, _ = _seg_model()
    seg.decode_head.feature_strides = [4, 8, 16, 32]  # x2 steps: same head
    check_model(seg)
    seg.decode_head.feature_strides = [4, 8, 32, 64]
    with pytest.raises(ValueError, match='decode_head.feature_strides'):
        check_model(seg)


def re_list(values) -> str:
    return str(list(values)).replace('[', r'\[').replace(']', r'\]')


# -- checkpoints --------------------------------------------------------------
@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """An mmengine-layout checkpoint of the tiny seg model."""
    model, _ = _seg_model()
    DefaultScope._instance_dict.clear()
    path = tmp_path_factory.mktemp('ckpt') / 'iter_2.pth'
    torch.save(dict(meta=dict(iter=2), state_dict=model.state_dict()), path)
    return str(path)


def test_checkpoint_missing(tmp_path):
    path = str(tmp_path / 'work_dir' / 'iter_9.pth')
    with pytest.raises(FileNotFoundError, match=rf'{path}.*does not exist.*'
                       'Fix'):
        check_checkpoint(path)


def test_checkpoint_truncated(tmp_path, checkpoint):
    data = open(checkpoint, 'rb').read()
    bad = tmp_path / 'iter_2.pth'
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match=rf'{bad}.*corrupted.*Fix'):
        check_checkpoint(str(bad))
    bad.write_bytes(b'not a checkpoint')
    with pytest.raises(RuntimeError, match='not a PyTorch checkpoint.*Fix'):
        check_checkpoint(str(bad))
    check_checkpoint(checkpoint)  # the intact one passes


def test_checkpoint_for_another_unet_lists_keys(tmp_path):
    wide = nn.ModuleDict(dict(backbone=_vpd()))
    narrow_cfg = tiny_unet_cfg()
    narrow_cfg['layers_per_block'] = 1  # another U-Net layout
    narrow = nn.ModuleDict(dict(backbone=_vpd(unet_cfg=narrow_cfg)))
    path = str(tmp_path / 'other_unet.pth')
    torch.save(dict(state_dict=wide.state_dict()), path)
    extra = sorted(set(wide.state_dict()) - set(narrow.state_dict()))
    assert extra and all(k.startswith('backbone.unet.') for k in extra)
    with pytest.raises(RuntimeError) as err:
        check_checkpoint(path, narrow, strict=False)
    msg = str(err.value)
    assert 'different model' in msg and 'Fix' in msg
    assert f'not in the model ({len(extra)})' in msg
    assert extra[0] in msg

    # same layout, other width: shape mismatches listed with both shapes
    other = tiny_unet_cfg(cross_attention_dim=48)
    wrong = nn.ModuleDict(dict(backbone=_vpd(
        unet_cfg=other, class_embeddings=dict(num_classes=4, dim=48))))
    with pytest.raises(RuntimeError, match=r'attn2.to_k.weight: checkpoint '
                       r'\(\d+, 32\), model \(\d+, 48\)'):
        check_checkpoint(path, wrong, strict=False)


def test_fine_tuning_may_change_the_head_not_the_unet(checkpoint):
    model, _ = _seg_model(class_embeddings=dict(num_classes=6, dim=32))
    check_checkpoint(checkpoint, model, strict=False)  # load_from: fine
    with pytest.raises(RuntimeError, match='class_embeddings: checkpoint '
                       r'\(4, 32\), model \(6, 32\)'):
        check_checkpoint(checkpoint, model, strict=True)  # resume / test


class _FakeRunner:
    def __init__(self, model, load_from=None, resume=False, work_dir='.'):
        self.model, self._load_from = model, load_from
        self._resume, self.work_dir = resume, work_dir


def test_check_before_run_resume_picks_latest(tmp_path, checkpoint):
    model, _ = _seg_model()
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_4.pth'))
    with pytest.raises(FileNotFoundError, match='iter_4.pth'):
        check_before_run(_FakeRunner(model, resume=True,
                                     work_dir=str(work_dir)))
    check_before_run(_FakeRunner(model, load_from=checkpoint))


# -- through the entry points ------------------------------------------------
def test_entry_points_refuse_before_running(tmp_path, checkpoint):
    """tools/train.py with a wrong neck or anchor strides and tools/test.py
    with another U-Net's checkpoint stop with the errors above, before any
    step."""
    model, _ = _seg_model()
    right = list(model.backbone.out_channels)
    wrong = [right[0], right[1] - 4, right[2] - 4, right[3]]
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    common = ['--cfg-options', 'train_dataloader.dataset.num_train=8',
              'train_dataloader.dataset.num_val=2',
              'val_dataloader.dataset.num_train=8',
              'val_dataloader.dataset.num_val=2',
              'test_dataloader.dataset.num_train=8',
              'test_dataloader.dataset.num_val=2']
    train = subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), SEG_CFG,
         '--work-dir', str(tmp_path / 'train'), *common,
         f'model.neck.in_channels={wrong}'.replace(' ', '')],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    test = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), SEG_CFG,
         checkpoint, '--work-dir', str(tmp_path / 'test'), *common,
         'model.backbone.unet_cfg.layers_per_block=1'],
        cwd=tmp_path, env=env, capture_output=True, text=True)
    p2 = subprocess.Popen(  # the stride-8 anchors on the P2 demo
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), P2_CFG,
         '--work-dir', str(tmp_path / 'p2'), '--cfg-options',
         'model.rpn_head.anchor_generator.strides=[8,16,32,64,128]'],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    out = train.communicate()[0]
    p2_out = p2.communicate()[0]
    assert p2.returncode != 0
    assert 'rpn_head.prior_generator.strides=[8, 16, 32, 64, 128] but the ' \
        'levels it reads have strides [4, 8, 16, 32, 64]' in p2_out, \
        p2_out[-3000:]
    assert 'Iter(train)' not in p2_out
    assert train.returncode != 0
    assert f'Fix: set neck.in_channels={right}' in out, out[-3000:]
    assert 'Iter(train)' not in out
    assert test.returncode != 0
    err = test.stdout + test.stderr
    assert 'was made for a different model' in err, err[-3000:]
    assert 'backbone.unet.' in err and 'Iter(test)' not in err


# -- NaN in inputs or losses --------------------------------------------------
def _toy_runner(work_dir, data):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    import mmdiff.engine  # noqa: F401  (registers the hooks)

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1)

        def forward(self, inputs, data_samples=None, mode='loss'):
            x = torch.stack(inputs)
            return dict(loss=self.linear(x).pow(2).mean() * x.max())

    return Runner(
        model=Toy(), work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data, sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2, collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='mmdiff.AtomicCheckpointHook',
                            by_epoch=False, interval=1)),
        custom_hooks=[dict(type='mmdiff.NaNGuardHook')],
        log_processor=dict(by_epoch=False),
        default_scope='mmengine')


def _toy_data(bad_index=None, value=float('nan')):
    data = [dict(inputs=torch.full((4, ), 1.0 + i)) for i in range(8)]
    if bad_index is not None:
        data[bad_index]['inputs'][2] = value
    return data


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_nan_input_stops_before_the_step(tmp_path, value):
    # samples 4, 5 form the 3rd batch; sample 5 is the batch's image #1
    runner = _toy_runner(tmp_path, _toy_data(5, value))
    with pytest.raises(FloatingPointError, match=r'input images at iteration'
                       r' 3 \(batch 2\): \[\'#1\'\].*Fix'):
        runner.train()
    # last_finite.pth: the guard's link to the newest verified checkpoint
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) \
        == ['iter_1.pth', 'iter_2.pth', 'last_finite.pth']


def test_nan_loss_stops_unlogged_and_uncheckpointed(tmp_path):
    runner = _toy_runner(tmp_path, _toy_data())

    # the loss turns NaN at the 3rd iteration (weights poisoned before it)
    from mmengine.hooks import Hook

    class Poison(Hook):
        priority = 'VERY_HIGH'

        def before_train_iter(self, runner, batch_idx, data_batch=None):
            if runner.iter == 2:
                with torch.no_grad():
                    runner.model.linear.bias.fill_(float('nan'))

    runner.register_hook(Poison())
    # iter_2.pth holds the weights iteration 3 started from: not trusted;
    # iter_1.pth was followed by a finite loss (iteration 2): kept as
    # last_finite.pth (issue 14)
    with pytest.raises(FloatingPointError, match=r'Non-finite loss at '
                       r'iteration 3 .*\'loss\': nan.*finite loss is '
                       r'.*last_finite.pth.*--resume'):
        runner.train()
    names = os.listdir(tmp_path)
    assert 'iter_3.pth' not in names and 'iter_2.pth' in names
    assert os.path.samefile(tmp_path / 'last_finite.pth',
                            tmp_path / 'iter_1.pth')
    # the guard runs before the hooks that log and checkpoint
    order = [type(h).__name__ for h in runner.hooks]
    assert order.index('NaNGuardHook') < order.index('LoggerHook') < \
        order.index('AtomicCheckpointHook')
