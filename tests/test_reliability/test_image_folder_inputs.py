"""Issue 24, image folders (items 6 and 11): ``ImageFolderDataset`` built
from the pretraining config's data set entry, as the runner builds it, on
folders a careless user or an attacker could hand it: symlink loops, a
small PNG whose header claims 20000x20000 pixels, captions that are not
UTF-8."""
import logging
import os
import os.path as osp
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DATASETS, init_default_scope

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PRETRAIN_CFG = osp.join(
    REPO, 'configs', 'pretrain',
    'diffusion-pretrain_sd15-caption_8xb4-15k_my-images-512x512.py')


def _build(root: str, **kwargs):
    """The pretraining config's training set (``captions='auto'``), pointed
    at ``root``; the pipeline left out (what is checked is the listing)."""
    cfg = Config.fromfile(PRETRAIN_CFG)
    init_default_scope(cfg.default_scope)
    ds = dict(cfg.train_dataloader.dataset)
    ds.update(data_root=root, pipeline=[], missing_captions='empty',
              **kwargs)
    return DATASETS.build(ds)


def _warnings():
    """Collects the records of mmengine's current logger."""
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    return records


def _image(path: str, size=(24, 32)) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(0).integers(0, 255, size + (3, ), np.uint8)
    assert cv2.imwrite(path, img)


def test_symlink_loops_read_each_image_once(tmp_path):
    root = tmp_path / 'imgs'
    _image(str(root / 'a.png'))
    os.symlink('.', root / 'self')  # one loop: 1 image became 41 samples
    records = _warnings()
    start = time.monotonic()
    ds = _build(str(root))
    assert len(ds) == 1 and ds[0]['img_path'] == str(root / 'a.png')

    os.symlink('.', root / 'again')  # two loops: the scan hung (> 600 s)
    os.makedirs(root / 'sub')
    os.symlink('..', root / 'sub' / 'up')
    os.symlink('../a.png', root / 'sub' / 'same.png')  # one image, 2 names
    ds = _build(str(root))
    assert len(ds) == 1
    assert time.monotonic() - start < 30
    said = [r.getMessage() for r in records if 'already scanned' in
            r.getMessage()]
    assert said and 'self' in said[-1] and 'same.png' in said[-1]


def _png_header_only(path: str, width: int, height: int) -> None:
    """A valid PNG whose IHDR says width x height; a tiny IDAT (the kind of
    file that decodes to gigabytes: a real one compresses to ~400 KB)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                chunk(b'IDAT', zlib.compress(b'\0' * 64)) +
                chunk(b'IEND', b''))


def test_pixel_cap_is_read_from_the_header(tmp_path, monkeypatch):
    root = tmp_path / 'imgs'
    _image(str(root / 'ok.png'))
    _png_header_only(str(root / 'bomb.png'), 20000, 20000)
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, 'imdecode',
                        lambda buf, flags: decoded.append(len(buf)) or
                        real(buf, flags))
    with pytest.raises(ValueError) as err:
        _build(str(root))
    msg = str(err.value)
    assert 'bomb.png' in msg and '20000x20000' in msg
    assert 'max_pixels' in msg and 'Fix:' in msg
    assert decoded == []  # refused before anything was decoded
    # the documented way out: a larger cap (the file is then decoded and,
    # being cut short, skipped as undecodable)
    ds = _build(str(root), max_pixels=None)
    assert [osp.basename(d['img_path']) for d in ds] == ['ok.png']


@pytest.mark.parametrize('source', ['txt', 'metadata'])
def test_non_utf8_captions_name_the_file(tmp_path, source):
    root = tmp_path / 'imgs'
    _image(str(root / 'a.png'))
    text = 'une photo d\u2019un caf\xe9'.encode('cp1252')
    if source == 'txt':
        bad = root / 'a.txt'
        bad.write_bytes(text)
    else:
        bad = root / 'metadata.jsonl'
        bad.write_bytes(b'{"file_name": "a.png", "text": "' + text + b'"}\n')
    with pytest.raises(ValueError) as err:
        _build(str(root), captions=source)
    msg = str(err.value)
    assert str(bad) in msg and 'not UTF-8' in msg
    assert 'iconv' in msg  # the fix
    # the same file re-saved as UTF-8 is read
    bad.write_bytes(text.decode('cp1252').encode('utf-8') if source == 'txt'
                    else text.decode('cp1252').join(
                        ['{"file_name": "a.png", "text": "', '"}\n'])
                    .encode('utf-8'))
    ds = _build(str(root), captions=source)
    assert ds[0]['caption'] == 'une photo d\u2019un caf\xe9'
