"""Issue 24, item 11: a damaged class-embedding cache is rebuilt, and write
errors the disk gives (file too large, read-only file system) name the
path and the fix instead of surfacing as raw OS errors."""
import errno
import logging
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.logging import MMLogger

from mmdiff.models.text import get_or_build_class_embeddings
from mmdiff.testing.clip import build_test_clip

NAMES = ['cat', 'road', 'traffic light']


def _damage(path: str, how: str) -> None:
    with open(path, 'rb') as f:
        data = f.read()
    if how == 'truncated':
        data = data[:len(data) - 40]
    elif how == 'zeroed':  # the tensor bytes (the end of the file) zeroed
        data = data[:-64] + bytes(64)
    else:  # the header's first bytes overwritten
        data = b'\xff' * 16 + data[16:]
    with open(path, 'wb') as f:
        f.write(data)


def test_damaged_class_embedding_cache_is_rebuilt(tmp_path):
    """The backbone's cached class embeddings (what ``class_embeddings=
    dict(class_names=..., text_encoder=...)`` builds): a damaged file was
    never rebuilt, and its error named no path."""
    clip = build_test_clip(str(tmp_path / 'clip'))
    cache = str(tmp_path / 'cache')
    kw = dict(templates=['a photo of a {}.'], cache_dir=cache,
              local_files_only=True, progress=False)
    first = get_or_build_class_embeddings(NAMES, clip, **kw)
    file = next(osp.join(cache, f) for f in os.listdir(cache)
                if f.endswith('.safetensors'))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    for how in ('truncated', 'zeroed', 'header'):
        _damage(file, how)
        again = get_or_build_class_embeddings(NAMES, clip, **kw)
        assert torch.equal(again, first), how
        said = [r.getMessage() for r in records
                if 'rebuilding' in r.getMessage()]
        assert said and file in said[-1], how
        records.clear()


def test_damaged_class_embedding_file_names_its_path(tmp_path):
    from mmdiff.models.text import (load_class_embeddings,
                                    save_class_embeddings)
    path = str(tmp_path / 'emb.safetensors')
    save_class_embeddings(path, torch.randn(3, 8))
    _damage(path, 'truncated')
    with pytest.raises(ValueError, match=rf'{re.escape(path)}.*truncated or damaged.*'
                       'Fix: rebuild it'):
        load_class_embeddings(path)


WRITE_TOO_LARGE = r'''
import resource, signal, sys
from mmdiff.converters import save_checkpoint
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
import torch
try:
    save_checkpoint({'w': torch.zeros(100000)}, sys.argv[1])
except OSError as e:
    print('ERROR', e)
'''


def test_file_too_large_names_the_path_and_the_fix(tmp_path):
    """A real EFBIG (the file-size limit of the process, as FAT32's 4 GB
    cap gives): was a raw ``OSError [Errno 27] File too large``."""
    target = tmp_path / 'out' / 'model.pth'
    target.parent.mkdir()
    target.write_bytes(b'previous')
    proc = subprocess.run([sys.executable, '-c', WRITE_TOO_LARGE,
                           str(target)], capture_output=True, text=True,
                          timeout=300)
    out = proc.stdout + proc.stderr
    assert 'ERROR' in out, out[-3000:]
    assert 'File too large' in out and str(target) in out
    assert 'Fix:' in out and 'ulimit -f' in out
    assert target.read_bytes() == b'previous'
    assert os.listdir(target.parent) == ['model.pth']  # no temp left


def test_read_only_file_system_names_the_path_and_the_fix(tmp_path,
                                                           monkeypatch):
    """EROFS where the folder is made and the lock taken (the demo data
    writers publish folders this way): was a raw OSError."""
    from mmdiff.utils import fileio

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(fileio.os, 'makedirs', read_only)
    target = str(tmp_path / 'ro' / 'data')
    with pytest.raises(OSError, match=rf'{re.escape(target)}.*read-only.*'
                       'Fix: write elsewhere'):
        fileio.publish_folder(target, lambda tmp: None)
