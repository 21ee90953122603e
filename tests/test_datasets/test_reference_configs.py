"""Every reference config trains 2 iterations on a fabricated miniature of
its real data set's on-disk layout and tests with its own protocol.

The configs under configs/vpd/, configs/mask2former/ and projects/*/configs/
(not the demos) run as written, except: a tiny SD-shaped U-Net/VAE and
random prompts replace the released weights (no download), batches are
small, and training stops after 2 iterations. Data sets are fabricated at the real image sizes in the
real layout (NYUv2 and KITTI from their official downloads through
tools/dataset_converters/) and found with ``--data-root``. tools/train.py
and tools/test.py run in subprocesses; tools/test.py keeps the config's
test pipeline, inference mode (whole / slide_flip) and evaluator.

One config per host and task runs by default (mmseg segmentation, mmseg
depth, mmdet detection + instance segmentation); the rest are marked
``datasets`` (``make test-datasets``).
"""
import glob
import json
import os.path as osp
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.utils import import_modules_from_strings

from mmdiff.models.diffusion import (tiny_sdxl_unet_cfg, tiny_unet_cfg,
                                     tiny_vae_cfg)
from mmdiff.models.diffusion.presets import SDXL_UNET, real_unet_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if ROOT not in sys.path:  # projects.* custom_imports, as tools/ find them
    sys.path.insert(0, ROOT)



@pytest.fixture(scope='module')
def helpers(load_tool):
    """tests/test_configs/test_configs.py (its backbone swap helpers)."""
    return load_tool('tests/test_configs/test_configs.py')

SEG, DEPTH = ['mIoU', 'aAcc'], ['rmse', 'abs_rel', 'd1']
BBOX, SEGM = ['coco/bbox_mAP'], ['coco/bbox_mAP', 'coco/segm_mAP']
PQ = ['coco_panoptic/PQ', 'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st']
# reference config -> (fabricated layout, metrics tools/test.py reports)
REFERENCE = {
    'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py': ('ade20k', SEG),
    'configs/vpd/vpd_sd15-fpn_8xb2-80k_cityscapes-512x1024.py':
    ('cityscapes', SEG),
    'configs/vpd/vpd_sd15-fpn_8xb2-40k_voc12aug-512x512.py':
    ('voc_aug', SEG),
    'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py': ('nyu', DEPTH),
    'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py':
    ('nyu', DEPTH),
    'configs/vpd/vpd_sd15_4xb8-25k_kitti-352x704.py': ('kitti', DEPTH),
    'configs/vpd/faster-rcnn_vpd_sd15-fpn_1x_coco.py': ('coco', BBOX),
    'configs/vpd/retinanet_vpd_sd15-fpn_1x_coco.py': ('coco', BBOX),
    'configs/vpd/mask-rcnn_vpd_sd15-fpn_1x_coco.py': ('coco', SEGM),
    'configs/vpd/cascade-mask-rcnn_vpd_sd15-fpn_1x_coco.py': ('coco', SEGM),
    'configs/mask2former/mask2former_vpd_sd15_8xb2-160k_ade20k-512x512.py':
    ('ade20k', SEG),
    # with the VAE encoder's stride-4 level (vae_taps)
    'configs/vpd/faster-rcnn_vpd-p2_sd15-fpn_1x_coco.py': ('coco', BBOX),
    'configs/vpd/retinanet_vpd-p2_sd15-fpn_1x_coco.py': ('coco', BBOX),
    'configs/vpd/mask-rcnn_vpd-p2_sd15-fpn_1x_coco.py': ('coco', SEGM),
    'configs/vpd/cascade-mask-rcnn_vpd-p2_sd15-fpn_1x_coco.py':
    ('coco', SEGM),
    'configs/vpd/upernet_vpd-p2_sd15_8xb2-80k_ade20k-512x512.py':
    ('ade20k', SEG),
    'configs/mask2former/mask2former_vpd-p2_sd15_8xb2-160k_ade20k-512x512.py':
    ('ade20k', SEG),
    'configs/mask2former/mask2former_vpd_sd15_8xb2-lsj-50e_coco.py':
    ('coco', SEGM),
    'configs/mask2former/mask2former_vpd_sd15_8xb2-lsj-50e_coco-panoptic.py':
    ('coco_panoptic', PQ + SEGM),
    'projects/CaptionPrompts/configs/'
    'caption-prompts_vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py':
    ('ade20k', SEG),
    'projects/Hyperfeatures/configs/'
    'hyperfeatures_vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py': ('ade20k', SEG),
    'projects/MetaPrompts/configs/'
    'meta-prompts_vpd_sd15-upernet_8xb2-80k_ade20k-512x512.py':
    ('ade20k', SEG),
    'projects/MetaPrompts/configs/'
    'meta-prompts_vpd_sd15_4xb8-25k_nyu-480x480.py':
    ('nyu', DEPTH),
    # the source's model (MetaPromptsBackbone)
    'projects/MetaPrompts/configs/'
    'meta-prompts_sd15-upernet_8xb1-80k_ade20k-512x512.py': ('ade20k', SEG),
    'projects/MetaPrompts/configs/'
    'meta-prompts_sd15_8xb3-25k_nyu-480x480.py': ('nyu', DEPTH),
    'projects/sd2_sdxl/configs/vpd_sd21-fpn_8xb2-80k_ade20k-512x512.py':
    ('ade20k', SEG),
    'projects/sd2_sdxl/configs/vpd_sdxl-fpn_8xb2-80k_ade20k-512x512.py':
    ('ade20k', SEG),
}
# FlexibleRunner overlays need GPUs: tests/test_tools/test_strategies.py
OVERLAYS = {
    'configs/vpd/vpd_sd15-fpn_fsdp-8xb2-80k_ade20k-512x512.py',
    'configs/vpd/vpd_sd15-fpn_deepspeed-zero2-8xb2-80k_ade20k-512x512.py',
}
# GenerativeDepth's configs build their own U-Net segmentor (no backbone to
# swap for a tiny one): built tiny, trained, tested and resumed in
# tests/test_projects/test_generative_depth.py
GENERATIVE = {
    'projects/GenerativeDepth/configs/'
    'generative-depth_sd2-base-direct_8xb16-20k_nyu-480x480.py',
    'projects/GenerativeDepth/configs/'
    'generative-depth_sd2-concat_8xb4-30k_kitti-352x704.py',
}
# one per host and task in the default run
DEFAULT = {
    'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
    'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py',
    'configs/vpd/mask-rcnn_vpd_sd15-fpn_1x_coco.py',
}
PARAMS = [pytest.param(p, id=osp.basename(p)[:-3], marks=() if p in DEFAULT
                       else pytest.mark.datasets) for p in sorted(REFERENCE)]


def test_every_reference_config_is_covered():
    found = {osp.relpath(p, ROOT) for pattern in (
        'configs/vpd/*.py', 'configs/mask2former/*.py',
        'projects/*/configs/*.py')
        for p in glob.glob(osp.join(ROOT, pattern)) if 'demo' not in p}
    assert found == set(REFERENCE) | OVERLAYS | GENERATIVE


def _tiny_backbone(backbone, tmp: str, data_root: str, helpers,
                   load_tool):
    xl = real_unet_cfg(backbone.get('pretrained')) is SDXL_UNET
    unet = tiny_sdxl_unet_cfg() if xl else tiny_unet_cfg()
    backbone = helpers._swap(backbone, unet, tiny_vae_cfg(),
                             unet['cross_attention_dim'])
    if 'captions' in backbone:  # CaptionPrompts: a tiny CLIP, one caption
        from mmdiff.testing import build_tiny_clip
        backbone.update(
            text_encoder=build_tiny_clip(osp.join(tmp, 'tiny_clip')),
            captions=osp.join(data_root, 'captions.json'), max_length=16)
        names = [osp.basename(p) for p in glob.glob(
            osp.join(data_root, 'images', '*', '*.jpg'))]
        with open(backbone['captions'], 'w') as f:
            json.dump({n: 'a room with a window' for n in names}, f)
    return backbone


def tiny_config(path: str, tmp: str, data_root: str, helpers,
                load_tool) -> str:
    """The reference config with a tiny U-Net, 2 iterations; its path."""
    cfg = Config.fromfile(osp.join(ROOT, path))
    import_modules_from_strings(**cfg.custom_imports)
    backbone = _tiny_backbone(cfg.model.backbone, tmp, data_root, helpers,
                              load_tool)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        channels = list(MODELS.build(backbone).out_channels)
    cfg.model.backbone = backbone
    owner, key = helpers._channel_owner(cfg.model)
    owner[key] = channels
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].update(
            num_workers=0, persistent_workers=False, batch_size=1)
    if 'pool_scales' in (cfg.model.get('decode_head') or {}):
        # UPerHead's 1x1 pyramid-pooling branch is batch-normalised: one
        # image gives one value per channel, which BatchNorm refuses in
        # training (the config trains 2 per GPU)
        cfg.train_dataloader.batch_size = 2
    if cfg.train_cfg.get('type') == 'EpochBasedTrainLoop':
        # 2 images, batches of 1: two iterations in one epoch
        cfg.train_cfg.update(max_epochs=1, val_interval=100)
    else:
        cfg.train_cfg.update(max_iters=2, val_interval=100)
        cfg.default_hooks.checkpoint.update(interval=2, by_epoch=False)
    # the split is evaluated once, by tools/test.py (mmengine would also
    # validate after the last iteration)
    cfg.default_hooks.checkpoint.pop('save_best', None)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.logger.interval = 1
    out = osp.join(tmp, osp.basename(path))
    cfg.dump(out)
    return out


def _score_thr_keys(config: str) -> list:
    test_cfg = Config.fromfile(config).model.get('test_cfg') or {}
    keys = ['score_thr'] if 'score_thr' in test_cfg else []
    return keys + [f'{k}.score_thr' for k, v in test_cfg.items()
                   if isinstance(v, dict) and 'score_thr' in v]


@pytest.mark.parametrize('path', PARAMS)
def test_reference_config_trains_and_tests(path, fabricated, tmp_path,
                                           helpers, load_tool, run_tool):
    layout, metrics = REFERENCE[path]
    data_root = fabricated(layout)
    config = tiny_config(path, str(tmp_path), data_root, helpers,
                         load_tool)
    work = str(tmp_path / 'work')
    proc = run_tool('tools/train.py', config, '--work-dir', work,
                    '--data-root', data_root, cwd=str(tmp_path), timeout=1200)
    log = proc.stdout + proc.stderr
    assert 'Iter(train) [2/2]' in log or 'Epoch(train) [1][2/2]' in log, \
        log[-3000:]
    # one summary line instead of one line per parameter / frozen tensor
    assert 'paramwise_options --' not in log
    assert 'is skipped since its requires_grad=False' not in log
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    test_dir = str(tmp_path / 'test')
    # the config's test pipeline, inference and evaluator; detectors keep
    # every box (2 steps from random weights score below the config's 0.05,
    # and CocoMetric then reports nothing)
    low = [f'model.test_cfg.{k}=0.0' for k in _score_thr_keys(config)]
    run_tool('tools/test.py', config, ckpt, '--work-dir', test_dir,
             '--data-root', data_root,
             *(['--cfg-options', *low] if low else []), cwd=str(tmp_path),
             timeout=1200)
    files = sorted(glob.glob(osp.join(test_dir, '*', '*.json')))
    assert files, 'tools/test.py wrote no metrics json'
    with open(files[-1]) as f:
        result = json.load(f)
    for key in metrics:
        assert key in result, (key, result)
