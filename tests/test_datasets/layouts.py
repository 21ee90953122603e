"""Fabricated miniatures of the reference data sets' on-disk layouts.

Each function writes a few images at the real data set's image size in the
exact folder layout that docs/dataset_prepare.md describes (for NYUv2 and
KITTI: the official download, which tools/dataset_converters/ reshapes).
Contents are random; only names, folders, formats and value ranges matter.
"""
import json
import os
import os.path as osp

import mmcv
import numpy as np


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _img(path: str, h: int, w: int, rng) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    mmcv.imwrite(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), path)


def _label(path: str, h: int, w: int, values, rng) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    label = rng.choice(np.asarray(values, dtype=np.uint8), size=(h, w))
    mmcv.imwrite(label, path)


def ade20k(root: str, num_train: int = 2, num_val: int = 1) -> str:
    """ADEChallengeData2016: 0 = other (reduce_zero_label), 1..150."""
    rng = _rng(1)
    base = osp.join(root, 'ADEChallengeData2016')
    for split, tag, num in (('training', 'train', num_train),
                            ('validation', 'val', num_val)):
        for i in range(1, num + 1):
            name = f'ADE_{tag}_{i:08d}'
            _img(osp.join(base, 'images', split, name + '.jpg'), 512, 683,
                 rng)
            _label(osp.join(base, 'annotations', split, name + '.png'), 512,
                   683, [0, 1, 5, 13, 150], rng)
    return base


def cityscapes(root: str, num_train: int = 2, num_val: int = 1) -> str:
    """leftImg8bit + gtFine *_labelTrainIds.png (0..18, 255 ignore)."""
    rng = _rng(2)
    for split, city, num in (('train', 'aachen', num_train),
                             ('val', 'frankfurt', num_val)):
        for i in range(num):
            stem = f'{city}_{i:06d}_000019'
            _img(osp.join(root, 'leftImg8bit', split, city,
                          stem + '_leftImg8bit.png'), 1024, 2048, rng)
            _label(osp.join(root, 'gtFine', split, city,
                            stem + '_gtFine_labelTrainIds.png'), 1024, 2048,
                   [0, 1, 8, 10, 13, 18, 255], rng)
    return root


def voc_aug(root: str) -> str:
    """VOC2012 + SegmentationClassAug and aug.txt (from SBD)."""
    rng = _rng(3)
    base = osp.join(root, 'VOC2012')
    names = {'train': ['2007_000032'], 'val': ['2007_000033'],
             'aug': ['2008_000002', '2008_000003']}
    for split, stems in names.items():
        for stem in stems:
            _img(osp.join(base, 'JPEGImages', stem + '.jpg'), 375, 500, rng)
            folder = 'SegmentationClassAug' if split == 'aug' else \
                'SegmentationClass'
            _label(osp.join(base, folder, stem + '.png'), 375, 500,
                   [0, 1, 15, 20, 255], rng)
    sets = osp.join(base, 'ImageSets', 'Segmentation')
    os.makedirs(sets, exist_ok=True)
    for split, stems in names.items():
        with open(osp.join(sets, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(stems) + '\n')
    return base


def coco(root: str, num_train: int = 2, num_val: int = 1) -> str:
    """train2017/val2017 + instances_*.json (polygons and one crowd RLE)."""
    from pycocotools import mask as mask_utils
    rng = _rng(4)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    from mmdet.datasets import CocoDataset
    # all 80 categories with COCO's ids (1..90 less the 10 unused), as the
    # real files list them; CocoMetric maps labels through them
    ids = [i for i in range(1, 91)
           if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]
    categories = [dict(id=i, name=n) for i, n in
                  zip(ids, CocoDataset.METAINFO['classes'])]
    ann_id = 1
    for split, num in (('train2017', num_train), ('val2017', num_val)):
        images, anns = [], []
        for i in range(num):
            image_id = 100 + i
            h, w = 480, 640
            name = f'{image_id:012d}.jpg'
            _img(osp.join(root, split, name), h, w, rng)
            images.append(dict(id=image_id, file_name=name, height=h,
                               width=w))
            for cat, (x, y, bw, bh) in zip(
                    (1, 3, 18), ((40, 60, 120, 200), (300, 200, 180, 120),
                                 (450, 50, 100, 90))):
                poly = [x, y, x + bw, y, x + bw, y + bh, x, y + bh]
                anns.append(dict(id=ann_id, image_id=image_id,
                                 category_id=cat, segmentation=[poly],
                                 area=float(bw * bh), iscrowd=0,
                                 bbox=[x, y, bw, bh]))
                ann_id += 1
            crowd = np.zeros((h, w), dtype=np.uint8, order='F')
            crowd[300:400, 100:260] = 1
            rle = mask_utils.encode(crowd)
            anns.append(dict(
                id=ann_id, image_id=image_id, category_id=1, iscrowd=1,
                segmentation=dict(size=rle['size'],
                                  counts=rle['counts'].decode()),
                area=float(crowd.sum()), bbox=[100, 300, 160, 100]))
            ann_id += 1
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=anns,
                           categories=categories), f)
    return root


def nyu_official(root: str, scenes=('kitchen', 'bedroom', 'living_room',
                                    'bathroom'),
                 train=(1, 3), test=(2, 4)) -> tuple:
    """The official labelled NYUv2 download: nyu_depth_v2_labeled.mat
    (MATLAB v7.3 = HDF5, arrays stored transposed) and splits.mat
    (trainNdxs/testNdxs, 1-based). Returns (mat path, splits path)."""
    import h5py
    import scipy.io
    rng = _rng(5)
    os.makedirs(root, exist_ok=True)
    mat = osp.join(root, 'nyu_depth_v2_labeled.mat')
    n = len(scenes)
    with h5py.File(mat, 'w') as f:
        # MATLAB column-major: (N, 3, W, H) images, (N, W, H) depths
        # red > green > blue: the channel order survives the round trip
        offset = np.array([160, 80, 0], dtype=np.uint8)[None, :, None, None]
        f['images'] = rng.integers(0, 64, (n, 3, 640, 480),
                                   dtype=np.uint8) + offset
        f['rawDepths'] = rng.uniform(0.5, 9.5, (n, 640, 480)).astype(
            np.float32)
        f['depths'] = f['rawDepths'][()]
        refs = f.create_group('#refs#')
        names = []
        for i, scene in enumerate(scenes):
            refs[f's{i}'] = np.array([[ord(c)] for c in scene],
                                     dtype=np.uint16)
            names.append(refs[f's{i}'].ref)
        f.create_dataset('sceneTypes', data=np.array([names]),
                         dtype=h5py.ref_dtype)
    splits = osp.join(root, 'splits.mat')
    scipy.io.savemat(splits, dict(
        trainNdxs=np.array(train, dtype=np.float64).reshape(-1, 1),
        testNdxs=np.array(test, dtype=np.float64).reshape(-1, 1)))
    return mat, splits


KITTI_DRIVES = (('2011_09_26', '2011_09_26_drive_0002_sync', 'val'),
                ('2011_09_26', '2011_09_26_drive_0009_sync', 'train'))


def kitti_official(root: str, frames=(5, 6), val_frames=None) -> tuple:
    """KITTI raw (<date>/<drive>/image_02/data/*.png, 375x1242) and the
    annotated depth download (data_depth_annotated/{train,val}/<drive>/
    proj_depth/groundtruth/image_02/*.png, uint16 in 1/256 m, 0 = none),
    plus Eigen split files in the BTS format. Returns
    (raw root, annotated root, train split, test split)."""
    rng = _rng(6)
    raw = osp.join(root, 'raw_data')
    ann = osp.join(root, 'data_depth_annotated')
    lines = {'train': [], 'val': []}
    for date, drive, split in KITTI_DRIVES:
        for frame in (val_frames or frames) if split == 'val' else frames:
            name = f'{frame:010d}.png'
            rel_img = f'{date}/{drive}/image_02/data/{name}'
            _img(osp.join(raw, rel_img), 375, 1242, rng)
            rel_gt = f'{drive}/proj_depth/groundtruth/image_02/{name}'
            depth = rng.uniform(1, 80, (375, 1242)) * 256
            depth[rng.random((375, 1242)) < 0.9] = 0  # sparse lidar
            path = osp.join(ann, split, rel_gt)
            os.makedirs(osp.dirname(path), exist_ok=True)
            mmcv.imwrite(depth.astype(np.uint16), path)
            lines[split].append(f'{rel_img} {rel_gt} 721.5377')
        # a frame without ground truth: listed with None, skipped
        lines[split].append(f'{date}/{drive}/image_02/data/'
                            f'{frames[0]:010d}.png None 721.5377')
    splits = []
    for split, name in (('train', 'eigen_train_files_with_gt.txt'),
                        ('val', 'eigen_test_files_with_gt.txt')):
        path = osp.join(root, name)
        with open(path, 'w') as f:
            f.write('\n'.join(lines[split]) + '\n')
        splits.append(path)
    return raw, ann, splits[0], splits[1]


# COCO panoptic's stuff category ids (panoptic_coco_categories.json of
# cocodataset/panopticapi), in the order of mmdet's CocoPanopticDataset
STUFF_IDS = (92, 93, 95, 100, 107, 109, 112, 118, 119, 122, 125, 128, 130,
             133, 138, 141, 144, 145, 147, 148, 149, 151, 154, 155, 156, 159,
             161, 166, 168, 171, 175, 176, 177, 178, 180, 181, 184, 185, 186,
             187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199,
             200)


def coco_panoptic(root: str, num_train: int = 2, num_val: int = 1) -> str:
    """coco() plus annotations/panoptic_{split}.json and the RGB-encoded
    segment PNGs in annotations/panoptic_{split}/ (things, one crowd, one
    stuff region), with COCO panoptic's 133 category ids and names."""
    from mmdet.datasets import CocoPanopticDataset
    from mmdiff.datasets.demo_panoptic import id2rgb
    coco(root, num_train, num_val)
    meta = CocoPanopticDataset.METAINFO
    things = [c['id'] for c in json.load(open(osp.join(
        root, 'annotations', 'instances_val2017.json')))['categories']]
    assert len(things) + len(STUFF_IDS) == len(meta['classes'])
    categories = [dict(id=i, name=n, isthing=int(k < len(things)),
                       supercategory='x')
                  for k, (i, n) in enumerate(zip(things + list(STUFF_IDS),
                                                 meta['classes']))]
    for split in ('train2017', 'val2017'):
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json')) as f:
            inst = json.load(f)
        annotations = []
        for image in inst['images']:
            h, w = image['height'], image['width']
            ids = np.full((h, w), 1, dtype=np.int64)  # 1: a stuff region
            segments = [dict(id=1, category_id=STUFF_IDS[-1], iscrowd=0)]
            anns = [a for a in inst['annotations']
                    if a['image_id'] == image['id']]
            for seg_id, a in enumerate(anns, start=2):
                x, y, bw, bh = (int(v) for v in a['bbox'])
                ids[y:y + bh, x:x + bw] = seg_id
                segments.append(dict(id=seg_id, category_id=a['category_id'],
                                     iscrowd=a['iscrowd']))
            for s in segments:
                ys, xs = np.nonzero(ids == s['id'])
                s.update(area=int(len(ys)), bbox=[
                    int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1),
                    int(np.ptp(ys) + 1)])
            segments = [s for s in segments if s['area']]
            png = image['file_name'].replace('.jpg', '.png')
            path = osp.join(root, 'annotations', f'panoptic_{split}', png)
            os.makedirs(osp.dirname(path), exist_ok=True)
            mmcv.imwrite(id2rgb(ids)[..., ::-1], path)  # RGB on disk
            annotations.append(dict(image_id=image['id'], file_name=png,
                                    segments_info=segments))
        with open(osp.join(root, 'annotations',
                           f'panoptic_{split}.json'), 'w') as f:
            json.dump(dict(images=inst['images'], annotations=annotations,
                           categories=categories), f)
    return root
