"""ImageFolderDataset captions: Hugging Face ``imagefolder`` metadata.jsonl
(diffusers' train_text_to_image.py layout) and kohya-style ``<stem>.txt``
sidecars, through the caption config's own pipeline into the data sample's
metainfo; odd cases are errors naming the file and the fix."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdiff.datasets import ImageFolderDataset

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CAPTION_CFG = osp.join(
    REPO, 'configs', 'pretrain',
    'diffusion-pretrain_sd15-caption_8xb4-15k_my-images-512x512.py')


def _png(path, seed=0, size=(40, 60)) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (*size, 3), np.uint8)
    assert cv2.imwrite(path, img)


def _jsonl(path, rows) -> None:
    with open(path, 'w') as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + '\n')


def _txt(path, text) -> None:
    with open(path, 'w') as f:
        f.write(text)


def captioned_folder(root) -> dict:
    """Root metadata.jsonl, one in a subfolder (paths relative to it), a
    .txt sidecar; returns the captions expected per relative path."""
    root = str(root)
    for i, rel in enumerate(['a.png', 'b.png', 'sub/c.png', 'sub/d.png',
                             'e.png']):
        _png(osp.join(root, rel), seed=i)
    _jsonl(osp.join(root, 'metadata.jsonl'), [
        {'file_name': 'a.png', 'text': 'a red square', 'other': 1},
        '',  # blank lines are skipped
        {'file_name': 'b.png', 'text': '  padded caption \n'}])
    _jsonl(osp.join(root, 'sub', 'metadata.jsonl'),
           [{'file_name': 'c.png', 'text': 'in a subfolder'}])
    _txt(osp.join(root, 'sub', 'd.txt'), 'from a sidecar\n')
    _txt(osp.join(root, 'e.txt'), 'sidecar of e')
    return {'a.png': 'a red square', 'b.png': 'padded caption',
            'sub/c.png': 'in a subfolder', 'sub/d.png': 'from a sidecar',
            'e.png': 'sidecar of e'}


def _by_name(ds) -> dict:
    return {osp.relpath(ds.get_data_info(i)['img_path'], ds.data_root):
            ds.get_data_info(i)['caption'] for i in range(len(ds))}


def test_metadata_and_sidecars_reach_the_data_sample(tmp_path):
    want = captioned_folder(tmp_path)
    cfg = Config.fromfile(CAPTION_CFG)
    ds_cfg = cfg.train_dataloader.dataset
    assert ds_cfg.captions == 'auto'
    pipeline = [dict(t) for t in cfg.train_pipeline]
    pipeline[1]['scale'] = 32
    pipeline[2]['crop_size'] = (32, 32)
    init_default_scope('mmseg')
    ds = ImageFolderDataset(data_root=str(tmp_path), pipeline=pipeline,
                            captions='auto')
    assert _by_name(ds) == want
    for i in range(len(ds)):  # the packer carries it into metainfo
        item = ds[i]
        rel = osp.relpath(item['data_samples'].img_path, str(tmp_path))
        assert item['data_samples'].metainfo['caption'] == want[rel]
    only_meta = ImageFolderDataset(data_root=str(tmp_path),
                                   captions='metadata',
                                   missing_captions='empty')
    assert _by_name(only_meta) == dict(
        {k: v for k, v in want.items() if 'sidecar' not in v},
        **{'sub/d.png': '', 'e.png': ''})
    only_txt = ImageFolderDataset(data_root=str(tmp_path), captions='txt',
                                  missing_captions='empty')
    assert _by_name(only_txt)['sub/d.png'] == 'from a sidecar'
    assert _by_name(only_txt)['a.png'] == ''
    # no captions asked for: none read
    assert 'caption' not in ImageFolderDataset(
        data_root=str(tmp_path)).get_data_info(0)


def test_caption_column(tmp_path):
    _png(str(tmp_path / 'x.png'))
    _jsonl(str(tmp_path / 'metadata.jsonl'),
           [{'file_name': 'x.png', 'prompt': 'by prompt'}])
    with pytest.raises(ValueError, match=r"no caption column 'text'.*"
                       r"\['file_name', 'prompt'\].*caption_column"):
        ImageFolderDataset(data_root=str(tmp_path), captions='auto')
    ds = ImageFolderDataset(data_root=str(tmp_path), captions='auto',
                            caption_column='prompt')
    assert ds.get_data_info(0)['caption'] == 'by prompt'


def test_missing_captions_error_or_empty(tmp_path):
    for name in ('p.png', 'q.png', 'r.png'):
        _png(str(tmp_path / name))
    _txt(str(tmp_path / 'p.txt'), 'only p')
    with pytest.raises(ValueError, match=r"2 of 3 images .* no caption.*"
                       r"'q.png', 'r.png'.*missing_captions='empty'"):
        ImageFolderDataset(data_root=str(tmp_path), captions='auto')
    ds = ImageFolderDataset(data_root=str(tmp_path), captions='auto',
                            missing_captions='empty')
    assert _by_name(ds) == {'p.png': 'only p', 'q.png': '', 'r.png': ''}


@pytest.mark.parametrize('rows,match', [
    ([{'file_name': 'gone.png', 'text': 'x'}],
     r"name no image found .*\['gone.png'\].*relative to the folder"),
    (['{"file_name": "x.png", "text": '], r'line 1: not valid JSON'),
    ([{'text': 'no file'}], r'no "file_name"'),
    ([{'file_name': 'x.png', 'text': 3}], r'must be a string'),
    ([{'file_name': 'x.png', 'text': 'a'}, {'file_name': './x.png',
                                            'text': 'b'}],
     r'line 2: .*listed twice'),
])
def test_bad_metadata_is_an_error(tmp_path, rows, match):
    _png(str(tmp_path / 'x.png'))
    _jsonl(str(tmp_path / 'metadata.jsonl'), rows)
    with pytest.raises(ValueError, match=match):
        ImageFolderDataset(data_root=str(tmp_path), captions='metadata')


def test_sources_must_agree_and_undecodable_rows_are_fine(tmp_path):
    _png(str(tmp_path / 'x.png'))
    with open(tmp_path / 'broken.png', 'w') as f:
        f.write('not a png')  # skipped (counted) by the decode check
    _jsonl(str(tmp_path / 'metadata.jsonl'), [
        {'file_name': 'x.png', 'text': 'same'},
        {'file_name': 'broken.png', 'text': 'listed, undecodable'}])
    _txt(str(tmp_path / 'x.txt'), 'same\n')
    ds = ImageFolderDataset(data_root=str(tmp_path), captions='auto')
    assert _by_name(ds) == {'x.png': 'same'}
    assert [osp.basename(p) for p in ds.skipped] == ['broken.png']
    _txt(str(tmp_path / 'x.txt'), 'other')
    with pytest.raises(ValueError, match=r"different captions.*'same' vs "
                       r"'other'.*captions='metadata' or 'txt'"):
        ImageFolderDataset(data_root=str(tmp_path), captions='auto')
    with pytest.raises(ValueError, match='captions must be'):
        ImageFolderDataset(data_root=str(tmp_path), captions='jsonl')
