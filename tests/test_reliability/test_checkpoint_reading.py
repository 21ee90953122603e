"""Findings 4 and 5 of issue 14: one checkpoint-reading path, loud opt-ins.

The probe: ``--trust-pickle`` fell back to a full unpickle on any error with
nothing printed; the converter suggested ``--trust-pickle`` for truncated
files; a bad ``pretrained=`` file was reported as ``FileNotFoundError`` with
download advice; hostile pickles were called "corrupted"; ``://`` paths
skipped the check; disk full was a raw ``ENOSPC`` traceback. The tools run
here in-process (their ``main(argv)``), on files on disk. Bad ``pretrained=``
files are tested through tools/train.py in test_weight_integrity.py.
"""
import errno
import functools
import http.server
import os
import os.path as osp
import threading

import pytest
import torch

from mmdiff.utils import checkpoint_io
from mmdiff.utils.checkpoint_io import (CheckpointError,
                                        UnsafeCheckpointError,
                                        read_checkpoint)

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools',
                 'model_converters')


@pytest.fixture(scope='module')
def converter(load_tool):
    """``converter(name)``: tools/model_converters/<name>.py, imported."""
    return lambda name: load_tool(osp.join(TOOLS, name + '.py'))


class Evil:
    """Creates ``path`` when unpickled with weights_only=False."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path, ))


@pytest.fixture
def files(tmp_path):
    state = dict(state_dict={'backbone.w': torch.arange(64.)}, meta={})
    good = tmp_path / 'good.pth'
    torch.save(state, good)
    raw = good.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(raw[:len(raw) // 2])
    evil = tmp_path / 'evil.pth'
    torch.save(dict(state, x=Evil(tmp_path / 'PWNED')), evil)
    return dict(good=str(good), truncated=str(truncated), evil=str(evil),
                marker=str(tmp_path / 'PWNED'))


def test_trust_pickle_is_loud_and_only_for_unsafe_pickles(files, tmp_path,
                                                          capsys, converter):
    publish = converter('publish_model')
    # without the flag: refused as unsafe (not "corrupted"), nothing ran
    assert publish.main([files['evil'], str(tmp_path / 'a.pth')]) == 1
    err = capsys.readouterr().err
    assert 'outside the weights-only allow-list' in err
    assert 'NOT loaded' in err and 'corrupted' not in err
    assert not osp.exists(files['marker'])
    # with the flag: a loud warning naming the file, then the full unpickle
    assert publish.main([files['evil'], str(tmp_path / 'b.pth'),
                         '--trust-pickle']) == 0
    err = capsys.readouterr().err
    assert f"--trust-pickle: fully unpickling '{files['evil']}'" in err
    assert 'RUN ARBITRARY CODE' in err
    assert osp.exists(files['marker'])  # the code ran, as warned
    # a truncated file is never unpickled fully, and no flag is suggested
    assert publish.main([files['truncated'], str(tmp_path / 'c.pth'),
                         '--trust-pickle']) == 1
    err = capsys.readouterr().err
    assert 'truncated or corrupted' in err and 'WARNING' not in err
    assert '--trust-pickle' not in err


def test_converter_does_not_suggest_trust_pickle_for_truncated(files,
                                                               tmp_path,
                                                               capsys,
                                                               converter):
    convert = converter('vpd_to_mmdiff')
    assert convert.main([files['truncated'], str(tmp_path / 'x.pth')]) == 1
    err = capsys.readouterr().err
    assert 'truncated or corrupted' in err and 'Fix' in err
    assert '--trust-pickle' not in err


def test_published_name_is_verified(files, tmp_path, capsys, converter):
    publish = converter('publish_model')
    assert publish.main([files['good'], str(tmp_path / 'model.pth')]) == 0
    final = capsys.readouterr().out.split('published ')[-1].strip()
    assert read_checkpoint(final)['state_dict']['backbone.w'].shape == (64, )
    raw = bytearray(open(final, 'rb').read())
    raw[-30] ^= 0x01  # in the zip's end records: CRCs of the data still ok
    open(final, 'wb').write(bytes(raw))
    with pytest.raises(CheckpointError, match='sha256 prefix'):
        read_checkpoint(final)


def test_urls_get_the_same_checks(files, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{server.server_address[1]}'
    try:
        local = checkpoint_io.verify_checkpoint(f'{url}/good.pth')
        assert local.startswith(str(tmp_path / 'torch_home'))
        with pytest.raises(UnsafeCheckpointError, match='NOT loaded'):
            checkpoint_io.verify_checkpoint(f'{url}/evil.pth')
        with pytest.raises(UnsafeCheckpointError):
            checkpoint_io.verify_checkpoint('file://' + files['evil'])
    finally:
        server.shutdown()
    assert not osp.exists(files['marker'])


def test_disk_full_and_permission_errors_name_the_fix(files, tmp_path,
                                                      monkeypatch):
    from mmdiff.converters import save_checkpoint
    target = tmp_path / 'out' / 'model.pth'
    target.parent.mkdir()
    target.write_bytes(b'previous')

    def full(obj, f, *args, **kwargs):  # writes to a file object
        f.write(b'partial')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, 'save', full)
    with pytest.raises(OSError, match=r'No space left on the disk holding '
                       r'.*out.*Fix: free space there'):
        save_checkpoint({'w': 1}, str(target))
    assert target.read_bytes() == b'previous'  # intact
    assert os.listdir(target.parent) == ['model.pth']  # no temp file left
    monkeypatch.undo()

    def denied(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, 'Permission denied', path)

    monkeypatch.setattr(checkpoint_io, 'open', denied, raising=False)
    with pytest.raises(CheckpointError, match=r'permission denied\. Fix: '
                       r'make it readable \(chmod a\+r'):
        read_checkpoint(files['good'])
