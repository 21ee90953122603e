"""Demo data sets: deterministic, atomic, read by the host data sets."""
import filecmp
import json
import os
import os.path as osp

import numpy as np
import pytest

from mmdiff.datasets import demo_data, demo_files
from mmdiff.datasets.demo_data import (DEMO_DEPTH_SCALE, DEMO_DET_CLASSES,
                                       DEMO_DET_PALETTE, DEMO_SEG_CLASSES,
                                       DEMO_SEG_PALETTE, DEMO_TASKS,
                                       ensure_demo_data)
from mmdiff.datasets.demo_scene import (DEPTH_RANGE, SCENE_NAMES,
                                        render_scene)

SIZE = 64
SEED = 3
NUM_TRAIN, NUM_VAL = 6, 4


def scene_of(split, index, size=SIZE, seed=SEED):
    """The scene a data set file was rendered from."""
    return render_scene(demo_files.scene_rng(seed, split, index), size)


def all_files(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = osp.join(dirpath, name)
            out[osp.relpath(path, folder)] = path
    return out


def visible(root):
    """Entries of ``root`` but the writers' lock files."""
    return sorted(n for n in os.listdir(root) if not n.endswith('.lock'))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    for task in DEMO_TASKS:
        ensure_demo_data(task, root, NUM_TRAIN, NUM_VAL, SIZE, SEED)
    return root


def test_scene_is_consistent():
    scene = scene_of(0, 0)
    labels = np.zeros_like(scene['sem_seg'])
    for obj in scene['objects']:
        assert not (labels[obj['mask']]).any(), 'objects overlap'
        labels[obj['mask']] = obj['label'] + 1
        assert np.allclose(scene['depth'][obj['mask']], obj['depth'],
                           atol=0.2)
    np.testing.assert_array_equal(labels, scene['sem_seg'])
    assert scene['img'].shape == (SIZE, SIZE, 3)
    assert DEPTH_RANGE[0] < scene['depth'].min() <= scene['depth'].max() \
        < DEPTH_RANGE[1]
    assert render_scene(np.random.default_rng(0), (48, 80))['img'].shape \
        == (48, 80, 3)


def test_small_object_set_is_coco_small(demo_root):
    """coco_small's objects are COCO-small (area < 32^2) at the demo's
    128 px, far smaller than coco's."""
    def areas(task, size):
        with open(osp.join(demo_root, task, 'annotations',
                           'instances_train.json')) as f:
            anns = json.load(f)['annotations']
        return np.array([a['area'] for a in anns]) * (128 / size)**2

    small, large = areas('coco_small', SIZE), areas('coco', SIZE)
    assert (small < 32**2).all()
    assert np.median(small) < np.median(large) / 4
    with pytest.raises(ValueError, match='object_scale'):
        render_scene(np.random.default_rng(0), 64, object_scale=0)


@pytest.mark.parametrize('task', DEMO_TASKS)
def test_deterministic(task, demo_root, tmp_path):
    same = ensure_demo_data(task, str(tmp_path / 'a'), NUM_TRAIN, NUM_VAL,
                            SIZE, SEED)
    ref = all_files(osp.join(demo_root, task))
    new = all_files(same)
    assert sorted(ref) == sorted(new)
    for rel, path in ref.items():
        assert filecmp.cmp(path, new[rel], shallow=False), rel

    other = ensure_demo_data(task, str(tmp_path / 'b'), NUM_TRAIN, NUM_VAL,
                             SIZE, SEED + 1)
    other_files = all_files(other)
    data = [rel for rel in ref if rel != 'demo_meta.json']
    differ = [rel for rel in data if rel not in other_files or
              not filecmp.cmp(ref[rel], other_files[rel], shallow=False)]
    assert len(differ) > len(data) // 2


def test_idempotent_and_checked(demo_root):
    folder = osp.join(demo_root, 'seg')
    before = {rel: os.stat(p).st_mtime_ns
              for rel, p in all_files(folder).items()}
    inode = os.stat(folder).st_ino
    assert ensure_demo_data('seg', demo_root, NUM_TRAIN, NUM_VAL, SIZE,
                            SEED) == folder
    after = {rel: os.stat(p).st_mtime_ns
             for rel, p in all_files(folder).items()}
    assert before == after and os.stat(folder).st_ino == inode
    with pytest.raises(ValueError, match='force=True'):
        ensure_demo_data('seg', demo_root, NUM_TRAIN, NUM_VAL, SIZE, SEED + 1)
    with pytest.raises(ValueError, match='task must be'):
        ensure_demo_data('flow', demo_root)


def test_force_and_atomic(tmp_path, monkeypatch):
    root = str(tmp_path)
    ensure_demo_data('seg', root, 2, 1, SIZE, SEED)
    ensure_demo_data('seg', root, 3, 1, SIZE, SEED, force=True)
    assert len(os.listdir(osp.join(root, 'seg', 'images', 'training'))) == 3
    assert visible(root) == ['seg']

    def interrupted(folder, *args):
        os.makedirs(osp.join(folder, 'images'))
        raise KeyboardInterrupt

    monkeypatch.setitem(demo_data.DEMO_MAKERS, 'depth', interrupted)
    stale = osp.join(root, '.depth-tmp-999999999-x')  # no such pid
    os.makedirs(stale)
    with pytest.raises(KeyboardInterrupt):
        ensure_demo_data('depth', root, 2, 1, SIZE, SEED)
    assert visible(root) == ['seg'], 'half-written data left'


def test_seg_loads_in_mmseg(demo_root):
    import mmseg.datasets  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='BaseSegDataset',
        data_root=osp.join(demo_root, 'seg'),
        data_prefix=dict(img_path='images/validation',
                         seg_map_path='annotations/validation'),
        img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False,
        metainfo=dict(classes=DEMO_SEG_CLASSES, palette=DEMO_SEG_PALETTE),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations'),
                  dict(type='PackSegInputs')]))
    assert len(dataset) == NUM_VAL
    assert dataset.metainfo['classes'] == DEMO_SEG_CLASSES
    seen = set()
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample['inputs'].shape) == (3, SIZE, SIZE)
        gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
        np.testing.assert_array_equal(gt, scene_of(1, i)['sem_seg'])
        seen |= set(np.unique(gt).tolist())
    assert seen <= set(range(len(DEMO_SEG_CLASSES))) and 0 in seen


def test_depth_loads_in_nyu_dataset(demo_root):
    import mmseg.datasets  # noqa: F401
    from mmengine.registry import init_default_scope
    from mmseg.datasets import NYUDataset
    from mmseg.registry import DATASETS
    init_default_scope('mmseg')
    dataset = DATASETS.build(dict(
        type='NYUDataset',
        data_root=osp.join(demo_root, 'depth'),
        data_prefix=dict(img_path='images/test',
                         depth_map_path='annotations/test'),
        test_mode=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadDepthAnnotation',
                       depth_rescale_factor=1 / DEMO_DEPTH_SCALE)]))
    assert len(dataset) == NUM_VAL
    nyu_classes = NYUDataset.METAINFO['classes']
    for i in range(len(dataset)):
        sample = dataset[i]
        index = int(osp.basename(sample['img_path'])[-9:-4])
        scene = scene_of(1, index)
        assert sample['category_id'] == nyu_classes.index(
            SCENE_NAMES[scene['scene']])
        depth = sample['gt_depth_map']
        assert depth.shape == sample['img'].shape[:2] == (SIZE, SIZE)
        assert DEPTH_RANGE[0] < depth.min() and depth.max() < DEPTH_RANGE[1]
        np.testing.assert_allclose(depth, scene['depth'], atol=1e-3)


def test_coco_loads_in_mmdet(demo_root):
    import mmdet.datasets  # noqa: F401
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    dataset = DATASETS.build(dict(
        type='CocoDataset',
        data_root=osp.join(demo_root, 'coco'),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=DEMO_DET_CLASSES, palette=DEMO_DET_PALETTE),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True,
                       with_mask=True)]))
    assert len(dataset) == NUM_VAL
    for i in range(len(dataset)):
        sample = dataset[i]
        index = int(osp.basename(sample['img_path'])[-9:-4])
        objects = scene_of(1, index)['objects']
        boxes = sample['gt_bboxes'].tensor.numpy()
        masks = sample['gt_masks'].to_ndarray().astype(bool)
        labels = sample['gt_bboxes_labels']
        assert sample['img'].shape == (SIZE, SIZE, 3)
        assert len(boxes) == len(masks) == len(objects) > 0
        assert labels.tolist() == [o['label'] for o in objects]
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= SIZE).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        for box, mask, obj in zip(boxes, masks, objects):
            ys, xs = np.nonzero(mask)
            assert xs.min() >= box[0] - 1 and xs.max() + 1 <= box[2] + 1
            assert ys.min() >= box[1] - 1 and ys.max() + 1 <= box[3] + 1
            iou = (mask & obj['mask']).sum() / (mask | obj['mask']).sum()
            assert iou > 0.8, iou


def test_coco_json_in_pycocotools(demo_root):
    from pycocotools.coco import COCO
    path = osp.join(demo_root, 'coco', 'annotations', 'instances_train.json')
    coco = COCO(path)
    names = [c['name'] for c in coco.loadCats(coco.getCatIds())]
    assert names == list(DEMO_DET_CLASSES)
    assert len(coco.getImgIds()) == NUM_TRAIN
    for ann in coco.loadAnns(coco.getAnnIds()):
        assert ann['iscrowd'] == 0 and len(ann['segmentation']) == 1
        mask_area = coco.annToMask(ann).sum()
        assert abs(mask_area - ann['area']) <= 0.15 * ann['area'] + 2
        x, y, w, h = ann['bbox']
        assert ann['area'] <= w * h
        assert os.path.exists(osp.join(
            demo_root, 'coco', 'train',
            coco.loadImgs(ann['image_id'])[0]['file_name']))


def test_host_metrics_read_the_ground_truth(demo_root):
    """Ground truth fed back as predictions scores perfectly."""
    import mmdet.evaluation  # noqa: F401
    import mmseg.evaluation  # noqa: F401
    import torch
    from mmdet.registry import METRICS as DET_METRICS
    from mmengine.registry import init_default_scope
    from mmseg.registry import METRICS as SEG_METRICS

    init_default_scope('mmdet')
    coco_root = osp.join(demo_root, 'coco')
    metric = DET_METRICS.build(dict(
        type='CocoMetric', metric=['bbox', 'segm'],
        ann_file=osp.join(coco_root, 'annotations', 'instances_val.json')))
    metric.dataset_meta = dict(classes=DEMO_DET_CLASSES)
    for i in range(NUM_VAL):
        objects = scene_of(1, i)['objects']
        boxes = []
        for obj in objects:
            poly = obj['polygon'] + 0.5
            boxes.append(np.concatenate([poly.min(0), poly.max(0)]))
        pred = dict(
            bboxes=torch.as_tensor(np.array(boxes), dtype=torch.float32),
            labels=torch.as_tensor([o['label'] for o in objects]),
            scores=torch.ones(len(objects)),
            masks=torch.as_tensor(np.stack([o['mask'] for o in objects])))
        metric.process({}, [dict(img_id=i + 1, ori_shape=(SIZE, SIZE),
                                 pred_instances=pred)])
    scores = metric.evaluate(NUM_VAL)
    assert scores['coco/bbox_mAP'] > 0.99
    assert scores['coco/segm_mAP'] > 0.9  # pixel masks vs. polygons

    init_default_scope('mmseg')
    metric = SEG_METRICS.build(dict(type='DepthMetric', min_depth_eval=1e-3,
                                    max_depth_eval=10.0, crop_type=None))
    metric.dataset_meta = dict()
    for i in range(NUM_VAL):
        depth = torch.as_tensor(scene_of(1, i)['depth'])[None]
        metric.process({}, [dict(pred_depth_map=dict(data=depth),
                                 gt_depth_map=dict(data=depth))])
    scores = metric.evaluate(NUM_VAL)
    assert scores['rmse'] < 1e-6 and scores['d1'] == 1.0


def test_chance_levels(demo_root):
    from mmdiff.datasets.demo_chance import depth_chance, seg_chance
    labels = np.stack([scene_of(1, i)['sem_seg'] for i in range(NUM_VAL)])
    background = (labels == 0).mean()
    res = seg_chance(osp.join(demo_root, 'seg'))
    assert np.isclose(res['aAcc'], 100 * background, atol=0.01)
    assert np.isclose(res['mIoU'], 100 * background / len(DEMO_SEG_CLASSES),
                      atol=0.01)
    res = depth_chance(osp.join(demo_root, 'depth'))
    assert set(res) == {'mean_map', 'median'}
    for scores in res.values():
        assert scores['rmse'] > 0.1 and 0 < scores['d1'] < 1


def test_default_size_and_cli(tmp_path, capsys, load_tool):
    module = load_tool('tools/misc/make_demo_data.py')
    root = str(tmp_path)
    module.main(['--root', root])  # the defaults the demo configs use
    out = capsys.readouterr().out
    assert all(f'wrote {t}' in out for t in DEMO_TASKS)
    total = sum(os.path.getsize(p) for p in all_files(root).values())
    assert total < 4 * 2**20, total
    module.main(['--root', root, '--tasks', 'seg', '--chance'])
    out = capsys.readouterr().out
    assert 'kept seg' in out and 'chance seg' in out
    with open(osp.join(root, 'seg', 'demo_meta.json')) as f:
        meta = json.load(f)
    assert meta['num_train'] == 64 and meta['size'] == [96, 96]


@pytest.mark.parametrize('name', ['DemoSegDataset', 'DemoCocoDataset',
                                  'DemoCocoPanopticDataset'])
def test_demo_palettes_are_tuples(name):
    """mmdet's and mmseg's visualisers refuse list colours (``Invalid type
    for color``): every demo palette entry is an (r, g, b) tuple."""
    from mmdiff.datasets import demo_datasets
    palette = getattr(demo_datasets, name).METAINFO['palette']
    assert palette and all(
        isinstance(c, tuple) and len(c) == 3 for c in palette), palette
