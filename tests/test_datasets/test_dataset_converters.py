"""tools/dataset_converters/ on fabricated miniatures of the official
downloads: the layout they write is the one the reference configs read."""
import os
import os.path as osp

import h5py
import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NYU_TOOL = osp.join(ROOT, 'tools/dataset_converters/nyu_depth_v2.py')
KITTI_TOOL = osp.join(ROOT, 'tools/dataset_converters/kitti_depth.py')


def test_nyu_official_mat_to_mmseg_layout(layouts, run_tool, tmp_path):
    mat, splits = layouts.nyu_official(str(tmp_path / 'official'))
    out = str(tmp_path / 'nyu')
    run_tool(NYU_TOOL, mat, splits, '-o', out, cwd=str(tmp_path))
    # splits.mat: train = frames 1, 3; test = 2, 4 (1-based) -> 0-based names
    assert sorted(os.listdir(osp.join(out, 'images', 'train'))) == [
        'kitchen_00000.jpg', 'living_room_00002.jpg']
    assert sorted(os.listdir(osp.join(out, 'annotations', 'test'))) == [
        'bathroom_00003.png', 'bedroom_00001.png']
    with h5py.File(mat, 'r') as f:
        raw = f['rawDepths'][1].T  # frame 2, stored transposed
        rgb = f['images'][1].T
    depth = mmcv.imread(osp.join(out, 'annotations/test/bedroom_00001.png'),
                        flag='unchanged')
    assert depth.dtype == np.uint16 and depth.shape == (480, 640)
    assert depth[100, 200] == int(raw[100, 200] * 1000.0)  # millimetres
    img = mmcv.imread(osp.join(out, 'images/test/bedroom_00001.jpg'),
                      channel_order='rgb')
    assert img.shape == (480, 640, 3)
    # the 7-pixel frame is black; inside, the colours (JPEG: means) are kept
    assert img[:5].mean() < 8 and img[:, 635:].mean() < 8
    inside, src = img[50:400, 50:600], rgb[50:400, 50:600]
    for c in range(3):
        assert abs(inside[..., c].mean() - src[..., c].mean()) < 4

    # what the NYU config reads: mmseg's NYUDataset, scene from the name
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/vpd/vpd_sd15_4xb8-25k_nyu-480x480.py'))
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS
    test = cfg.test_dataloader.dataset
    test.update(data_root=out, pipeline=[], lazy_init=False)
    data = DATASETS.build(test)
    classes = data.metainfo['classes']
    assert [data.get_data_info(i)['category_id']
            for i in range(len(data))] == [
        classes.index('bathroom'), classes.index('bedroom')]


def test_nyu_refuses_bad_input_and_writes_nothing(layouts, run_tool,
                                                  tmp_path):
    mat, splits = layouts.nyu_official(
        str(tmp_path / 'official'), train=(1, ), test=(2, 3))  # 4 missing
    out = str(tmp_path / 'nyu')
    proc = run_tool(NYU_TOOL, mat, splits, '-o', out, cwd=str(tmp_path),
                    check=False)
    assert proc.returncode != 0
    assert 'frame 4 is in neither split' in proc.stderr
    assert not osp.exists(out)
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.nyu-')]
    proc = run_tool(NYU_TOOL, splits, splits, '-o', out,
                    cwd=str(tmp_path), check=False)
    assert proc.returncode != 0 and 'nyu_depth_v2_labeled.mat' in proc.stderr


def _kitti_dataset(out, ann_file):
    init_default_scope('mmseg')
    from mmseg.registry import DATASETS

    import mmdiff.datasets.kitti_depth  # noqa: F401
    cfg = Config.fromfile(
        osp.join(ROOT, 'configs/vpd/vpd_sd15_4xb8-25k_kitti-352x704.py'))
    ds = cfg.train_dataloader.dataset
    ds.update(data_root=out, pipeline=[], ann_file=ann_file)
    return DATASETS.build(ds)


def test_kitti_official_to_eigen_layout(layouts, run_tool, tmp_path):
    raw, ann, train, test = layouts.kitti_official(
        str(tmp_path / 'official'))
    out = str(tmp_path / 'kitti')
    run_tool(KITTI_TOOL, '--raw', raw, '--depth', ann, '--splits', train,
             test, '-o', out, cwd=str(tmp_path))
    data = _kitti_dataset(out, 'kitti_eigen_train_files_with_gt.txt')
    assert len(data) == 2  # 2 frames with depth; the None line skipped
    for info in map(data.get_data_info, range(len(data))):
        assert osp.isfile(info['img_path'])
        depth = mmcv.imread(info['depth_map_path'], flag='unchanged')
        assert depth.dtype == np.uint16 and depth.shape == (375, 1242)
    # the val drive's depth (data_depth_annotated/val) is found as well
    assert len(_kitti_dataset(out, 'kitti_eigen_test_files_with_gt.txt')) == 2


def test_kitti_accepts_vpd_split_files(layouts, run_tool, tmp_path):
    """VPD/GLPDepth's eigen_benchmark lists: /raw_data/... and
    /data_depth_annotated/<train|val>/..., no focal length."""
    raw, ann, train, test = layouts.kitti_official(
        str(tmp_path / 'official'))
    vpd = str(tmp_path / 'test_list.txt')
    with open(test) as f, open(vpd, 'w') as g:
        for line in f:
            img, gt, _ = line.split()
            if gt != 'None':
                g.write(f'/raw_data/{img} /data_depth_annotated/val/{gt}\n')
    out = str(tmp_path / 'kitti')
    run_tool(KITTI_TOOL, '--raw', raw, '--depth', ann, '--splits', train,
             vpd, '-o', out, cwd=str(tmp_path))
    with open(osp.join(out, 'kitti_eigen_test_files_with_gt.txt')) as f:
        first = f.readline().split()
    assert first[0].startswith('2011_09_26/2011_09_26_drive_0002_sync/')
    assert first[1].startswith('2011_09_26_drive_0002_sync/proj_depth/')
    assert first[2] == '721.5377'
    assert len(_kitti_dataset(out, 'kitti_eigen_test_files_with_gt.txt')) == 2


def test_kitti_missing_files_refused(layouts, run_tool, tmp_path):
    raw, ann, train, test = layouts.kitti_official(
        str(tmp_path / 'official'))
    with open(test, 'a') as f:
        f.write('2011_09_26/2011_09_26_drive_0002_sync/image_02/data/'
                '0000000099.png 2011_09_26_drive_0002_sync/proj_depth/'
                'groundtruth/image_02/0000000099.png 721.5377\n')
    out = str(tmp_path / 'kitti')
    args = [KITTI_TOOL, '--raw', raw, '--depth', ann, '--splits', train,
            test, '-o', out]
    proc = run_tool(*args, cwd=str(tmp_path), check=False)
    assert proc.returncode != 0 and '--skip-missing' in proc.stderr
    assert not osp.exists(out)
    run_tool(*args, '--skip-missing', cwd=str(tmp_path))
    assert len(_kitti_dataset(out, 'kitti_eigen_test_files_with_gt.txt')) == 2
