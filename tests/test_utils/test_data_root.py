"""--data-root reaches every dataloader and evaluator; --cfg-options
data_root=... does not (OpenMMLab behaviour, documented)."""
import os.path as osp

from mmengine.config import Config

from mmdiff.utils.data_root import set_data_root

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg(name):
    return Config.fromfile(osp.join(ROOT, 'configs/vpd', name))


def test_cfg_options_data_root_does_not_propagate():
    cfg = _cfg('mask-rcnn_vpd_sd15-fpn_1x_coco.py')
    cfg.merge_from_dict({'data_root': '/elsewhere/coco/'})
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.val_evaluator.ann_file.startswith('data/coco/')


def test_data_root_moves_coco_loaders_and_evaluators():
    cfg = _cfg('mask-rcnn_vpd_sd15-fpn_1x_coco.py')
    set_data_root(cfg, '/elsewhere/coco')
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.data_root == \
            '/elsewhere/coco'
    assert cfg.val_evaluator.ann_file == \
        '/elsewhere/coco/annotations/instances_val2017.json'
    assert cfg.test_evaluator.ann_file == cfg.val_evaluator.ann_file


def test_data_root_reaches_concat_datasets():
    cfg = _cfg('vpd_sd15-fpn_8xb2-40k_voc12aug-512x512.py')
    set_data_root(cfg, '/x/VOC2012')
    roots = [d.data_root for d in cfg.train_dataloader.dataset.datasets]
    assert roots == ['/x/VOC2012', '/x/VOC2012']
    assert cfg.test_dataloader.dataset.data_root == '/x/VOC2012'


def test_data_root_moves_the_panoptic_metric_segment_folder():
    """mmdet's CocoPanopticMetric reads the ground-truth PNGs from its own
    seg_prefix (found by the reference-config run on fabricated data)."""
    import mmdiff  # noqa: F401  (the mmdet:: base of the config)
    cfg = Config.fromfile(osp.join(
        ROOT, 'configs/mask2former/'
        'mask2former_vpd_sd15_8xb2-lsj-50e_coco-panoptic.py'))
    set_data_root(cfg, '/x/coco')
    panoptic, instances = cfg.test_evaluator
    assert panoptic.seg_prefix == '/x/coco/annotations/panoptic_val2017/'
    assert panoptic.ann_file == '/x/coco/annotations/panoptic_val2017.json'
    assert instances.ann_file == '/x/coco/annotations/instances_val2017.json'
