"""Run the bad-input and bad-checkpoint probes of issue 14 in one process.

    python probe_driver.py WORK_DIR

Writes the data and checkpoints the probes read under ``WORK_DIR`` (files
on disk, host data set classes), then runs ``tools/train.py`` /
``tools/test.py`` once per probe, in this process (``runpy``, one import
of torch/mmseg/mmdet for all of them), and prints one JSON line per probe:
``{"probe": name, "outcome": "ok" | exception type, "message": ...}``.
``tests/test_reliability/test_input_guards.py`` runs it and checks each
line.
"""
import json
import os
import os.path as osp
import runpy
import shutil
import sys
import traceback

import cv2
import numpy as np

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO)
TRAIN = osp.join(REPO, 'tools', 'train.py')
TEST = osp.join(REPO, 'tools', 'test.py')
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
DEPTH_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-depth_demo-nyu.py')
COCO_CFG = osp.join(REPO, 'configs', 'demo',
                    'mask-rcnn_vpd_tiny-fpn_demo-coco.py')
N_TRAIN, N_VAL, SIZE = 4, 2, 64
TRAIN_OPTS = ['train_cfg.max_iters=1', 'train_dataloader.batch_size=2',
              'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
              'custom_hooks.0.steps=2', 'custom_hooks.0.size=64',
              'default_hooks.checkpoint.interval=1']

SEG_DATASET = '''
_base_ = [{base!r}]
{extra}
_ds = dict(_delete_=True, type='BaseSegDataset', data_root={root!r},
           metainfo=dict(classes=('background', 'a', 'b', 'c')),
           img_suffix={suffix!r}, seg_map_suffix='.png',
           reduce_zero_label=False)
_load = dict(type='LoadImageFromFile', color_type={color!r})
train_dataloader = dict(dataset=dict(
    _ds, data_prefix=dict(img_path='images/training',
                          seg_map_path='annotations/training'),
    pipeline=[_load, dict(type='LoadAnnotations'),
              dict(type='PackSegInputs')]))
test_dataloader = dict(dataset=dict(
    _ds, data_prefix=dict(img_path='images/validation',
                          seg_map_path='annotations/validation'),
    pipeline=[_load, dict(type='LoadAnnotations'),
              dict(type='PackSegInputs')]))
'''


def seg_config(work: str, name: str, root: str, suffix: str = '.jpg',
               color: str = 'color', extra: str = '') -> str:
    path = osp.join(work, 'configs', f'probe_{name}.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(SEG_DATASET.format(base=SEG_CFG, root=root, suffix=suffix,
                                   color=color, extra=extra))
    return path


DEPTH_DATASET = '''
_base_ = [{base!r}]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='NYUDataset', data_root={root!r},
    data_prefix=dict(img_path='images/train',
                     depth_map_path='annotations/train'),
    pipeline={{{{_base_.train_pipeline}}}}))
'''
COCO_DATASET = '''
_base_ = [{base!r}]
train_dataloader = dict(dataset=dict(
    _delete_=True, type='CocoDataset', data_root={root!r},
    metainfo=dict(classes=('circle', 'square', 'triangle')),
    ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=1),
    pipeline={{{{_base_.train_pipeline}}}}))
'''


def write_config(work: str, name: str, text: str) -> str:
    path = osp.join(work, 'configs', f'probe_{name}.py')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def copy_set(src: str, dst: str) -> str:
    shutil.copytree(src, dst)
    os.remove(osp.join(dst, 'demo_meta.json'))
    return dst


def rewrite_images(root: str, make) -> None:
    """Replace each image of ``root`` by ``make(bgr)`` written as png/tiff."""
    for split in ('training', 'validation'):
        folder = osp.join(root, 'images', split)
        for name in sorted(os.listdir(folder)):
            path = osp.join(folder, name)
            img, ext = make(cv2.imread(path))
            os.remove(path)
            cv2.imwrite(path[:-4] + ext, img)


def make_data(work: str) -> dict:
    from mmdiff.datasets.demo_data import ensure_demo_data
    demo = osp.join(work, 'data', 'demo')
    seg = ensure_demo_data('seg', demo, N_TRAIN, N_VAL, SIZE)
    d = {'seg': seg}
    d['labels'] = copy_set(seg, osp.join(work, 'bad', 'labels'))
    for split in ('training', 'validation'):
        path = osp.join(d['labels'], 'annotations', split, 'demo_00000.png')
        mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        mask[:4, :4] = 7  # 4 classes: 7 is neither a class nor 255
        cv2.imwrite(path, mask)
    d['u16'] = copy_set(seg, osp.join(work, 'bad', 'u16'))
    rewrite_images(d['u16'], lambda im: (im.astype(np.uint16) * 257, '.png'))
    d['rgba'] = copy_set(seg, osp.join(work, 'bad', 'rgba'))
    rewrite_images(d['rgba'],
                   lambda im: (cv2.cvtColor(im, cv2.COLOR_BGR2BGRA), '.png'))
    d['nan'] = copy_set(seg, osp.join(work, 'bad', 'nan'))

    def with_nan(im):
        im = im.astype(np.float32)
        im[0, 0, 0] = np.nan
        return im, '.tiff'
    rewrite_images(d['nan'], with_nan)
    d['tiny'] = copy_set(seg, osp.join(work, 'bad', 'tiny'))
    for split in ('training', 'validation'):
        for sub, ext in (('images', '.jpg'), ('annotations', '.png')):
            path = osp.join(d['tiny'], sub, split, 'demo_00000' + ext)
            cv2.imwrite(path, cv2.imread(path, cv2.IMREAD_UNCHANGED)[:1, :1])
    d['huge'] = copy_set(seg, osp.join(work, 'bad', 'huge'))
    for sub, ext in (('images', '.jpg'), ('annotations', '.png')):
        path = osp.join(d['huge'], sub, 'validation', 'demo_00000' + ext)
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        cv2.imwrite(path, cv2.resize(img, (2100, 2100),
                                     interpolation=cv2.INTER_NEAREST))
    depth = ensure_demo_data('depth', demo, N_TRAIN, N_VAL, SIZE)
    d['depth0'] = copy_set(depth, osp.join(work, 'bad', 'depth0'))
    folder = osp.join(d['depth0'], 'annotations', 'train')
    for name in os.listdir(folder):
        cv2.imwrite(osp.join(folder, name),
                    np.zeros((SIZE, SIZE), np.uint16))
    coco = ensure_demo_data('coco', demo, N_TRAIN, N_VAL, SIZE)
    d['coco0'] = copy_set(coco, osp.join(work, 'bad', 'coco0'))
    ann = osp.join(d['coco0'], 'annotations', 'instances_train.json')
    with open(ann) as f:
        data = json.load(f)
    data['annotations'] = []
    with open(ann, 'w') as f:
        json.dump(data, f)
    return d


def make_checkpoints(work: str) -> dict:
    """A checkpoint of the demo seg model in every good and bad form."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    import mmdiff.models  # noqa: F401
    cfg = Config.fromfile(SEG_CFG)
    init_default_scope('mmseg')
    torch.manual_seed(0)
    state = {'state_dict': MODELS.build(cfg.model).state_dict(),
             'meta': {}}
    c = osp.join(work, 'ckpt')
    os.makedirs(c)
    out = {k: osp.join(c, k + '.pth') for k in
           ('zip', 'legacy', 'truncated', 'flipped', 'evil')}
    torch.save(state, out['zip'])
    torch.save(state, out['legacy'], _use_new_zipfile_serialization=False)
    raw = open(out['zip'], 'rb').read()
    open(out['truncated'], 'wb').write(raw[:len(raw) * 2 // 3])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0x01  # one bit inside a tensor
    open(out['flipped'], 'wb').write(bytes(flipped))
    marker = osp.join(work, 'PWNED')
    torch.save(dict(state, x=Evil(marker)), out['evil'])
    out['hashed'] = osp.join(c, 'model-00000000.pth')
    shutil.copy(out['zip'], out['hashed'])
    out['marker'] = marker
    return out


class Evil:
    """A pickle that creates a file when loaded with weights_only=False."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


def run_tool(tool: str, argv: list) -> dict:
    old = sys.argv
    sys.argv = [tool] + argv
    try:
        runpy.run_path(tool, run_name='__main__')
        return dict(outcome='ok', message='')
    except BaseException as e:  # noqa: B902 - report every outcome
        return dict(outcome=type(e).__name__, message=str(e),
                    where=traceback.format_exc())
    finally:
        sys.argv = old


def probes(work: str, d: dict, ck: dict) -> list:
    wd = osp.join(work, 'work_dirs')
    seg_test_opts = ['--cfg-options', 'test_dataloader.batch_size=1']
    out = [
        ('labels_train', TRAIN, [seg_config(work, 'labels_train',
                                            d['labels'])]),
        ('labels_test', TEST, [seg_config(work, 'labels_test', d['labels']),
                               ck['zip']]),
        ('u16_test', TEST, [seg_config(work, 'u16', d['u16'], '.png',
                                       'unchanged'), ck['zip']]),
        ('rgba_test', TEST, [seg_config(work, 'rgba', d['rgba'], '.png',
                                        'unchanged'), ck['zip']]),
        ('nan_float_test', TEST, [seg_config(
            work, 'nan', d['nan'], '.tiff', 'unchanged',
            "custom_hooks = [dict(type='mmdiff.InputGuardHook', "
            "image_dtypes=('uint8', 'float32'))]"), ck['zip']]),
        ('tiny_train', TRAIN, [seg_config(work, 'tiny', d['tiny'])]),
        ('huge_test', TEST, [seg_config(work, 'huge', d['huge']),
                             ck['zip']]),
        ('std0_test', TEST, [seg_config(work, 'std0', d['seg']), ck['zip'],
                             '--cfg-options',
                             'model.data_preprocessor.std=[0,0,0]']),
        ('typo_train', TRAIN, [SEG_CFG, '--cfg-options',
                               'model.backbone.class_embeddings.learnabel='
                               'False']),
        ('depth0_train', TRAIN, [write_config(
            work, 'depth0', DEPTH_DATASET.format(base=DEPTH_CFG,
                                                 root=d['depth0']))]),
        ('coco_empty_train', TRAIN, [write_config(
            work, 'coco0', COCO_DATASET.format(base=COCO_CFG,
                                               root=d['coco0'] + '/'))]),
        ('ckpt_legacy_test', TEST, [seg_config(work, 'ckpt', d['seg']),
                                    ck['legacy']]),
        ('ckpt_truncated_test', TEST, [seg_config(work, 'ckpt', d['seg']),
                                       ck['truncated']]),
        ('ckpt_flipped_test', TEST, [seg_config(work, 'ckpt', d['seg']),
                                     ck['flipped']]),
        ('ckpt_hashed_test', TEST, [seg_config(work, 'ckpt', d['seg']),
                                    ck['hashed']]),
        ('ckpt_evil_url_train', TRAIN, [SEG_CFG, '--cfg-options',
                                        f'load_from=file://{ck["evil"]}']),
    ]
    for i, (name, tool, argv) in enumerate(out):
        argv += ['--work-dir', osp.join(wd, name)]
        if tool == TRAIN:
            opts = list(TRAIN_OPTS)
            if 'coco' in name:
                opts.remove('custom_hooks.0.size=64')
            argv += ['--cfg-options'] + opts
        else:
            argv += seg_test_opts
    return out


def main() -> None:
    work = osp.abspath(sys.argv[1])
    os.makedirs(work, exist_ok=True)
    os.chdir(work)  # data/demo/vae (the demo VAE) lands here
    import torch
    torch.set_num_threads(1)
    d = make_data(work)
    ck = make_checkpoints(work)
    for name, tool, argv in probes(work, d, ck):
        env_key = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'
        if 'evil' in name:
            os.environ[env_key] = '1'
        result = run_tool(tool, argv)
        os.environ.pop(env_key, None)
        result.update(probe=name, marker=osp.exists(ck['marker']))
        print('PROBE ' + json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
