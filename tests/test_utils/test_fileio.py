"""mmdiff.utils.fileio: whole files and folders, or nothing, on disk."""
import errno
import hashlib
import os
import os.path as osp
import stat

import pytest

from mmdiff.utils import fileio


@pytest.fixture
def umask_022():
    """A known umask, so that "a normal file's mode" is a fixed number."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _write_bytes(data):
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    return write


def _failing_write(tmp):
    with open(tmp, 'wb') as f:
        f.write(b'half')
    raise RuntimeError('killed mid-write')


def test_atomic_write_failure_leaves_previous_file(tmp_path):
    path = tmp_path / 'x.pth'
    fileio.atomic_write(str(path), _write_bytes(b'old'))
    with pytest.raises(RuntimeError, match='mid-write'):
        fileio.atomic_write(str(path), _failing_write)
    assert path.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['x.pth']  # no temporary file left
    with pytest.raises(RuntimeError):
        fileio.atomic_write(str(tmp_path / 'new.pth'), _failing_write)
    assert os.listdir(tmp_path) == ['x.pth']  # nothing half-written


def test_atomic_write_disk_full_names_the_fix(tmp_path):
    def full(tmp):
        open(tmp, 'wb').close()
        raise OSError(errno.ENOSPC, 'No space left on device')

    with pytest.raises(OSError, match='No space left.*a.json was not replaced'
                       '.*Fix: free space'):
        fileio.atomic_write(str(tmp_path / 'a.json'), full)
    assert os.listdir(tmp_path) == []


def test_atomic_write_permissions_and_final_name(tmp_path, umask_022):
    path = fileio.atomic_write_text(str(tmp_path / 'sub' / 'a.txt'), 'hi')
    assert open(path).read() == 'hi'
    assert _mode(path) == 0o644  # like open(path, 'w'), not mkstemp's 0o600
    digest = hashlib.sha256(b'data').hexdigest()
    def hash_name(tmp):
        return str(tmp_path / f'm-{fileio.sha256_file(tmp)[:8]}.pth')

    final = fileio.atomic_write(str(tmp_path / 'm.pth'),
                                _write_bytes(b'data'), final_name=hash_name)
    assert osp.basename(final) == f'm-{digest[:8]}.pth'
    assert sorted(os.listdir(tmp_path)) == [osp.basename(final), 'sub']


def _fill(tmp):
    os.makedirs(osp.join(tmp, 'images'))
    with open(osp.join(tmp, 'images', 'a.jpg'), 'wb') as f:
        f.write(b'jpg')
    fileio.atomic_write_json(osp.join(tmp, 'meta.json'), dict(n=1), indent=1)


def test_publish_folder_permissions_and_content(tmp_path, umask_022):
    target = str(tmp_path / 'data' / 'seg')
    assert fileio.publish_folder(target, _fill) == target
    assert _mode(target) == 0o755  # like mkdir, not mkdtemp's 0o700
    assert _mode(osp.join(target, 'images')) == 0o755
    assert _mode(osp.join(target, 'meta.json')) == 0o644
    tree = fileio.sha256_tree(target, exclude=('meta.json', ))
    assert tree == {'images/a.jpg': hashlib.sha256(b'jpg').hexdigest()}
    # only the target and its writers' lock beside it
    assert sorted(os.listdir(tmp_path / 'data')) == ['.seg.lock', 'seg']


def test_publish_folder_failure_leaves_nothing(tmp_path):
    target = str(tmp_path / 'seg')

    def fail(tmp):
        _fill(tmp)
        raise RuntimeError('killed mid-write')

    with pytest.raises(RuntimeError, match='mid-write'):
        fileio.publish_folder(target, fail)
    assert sorted(os.listdir(tmp_path)) == ['.seg.lock']
    # replacing: a failure keeps the previous folder whole
    fileio.publish_folder(target, _fill)
    before = fileio.sha256_tree(target)
    with pytest.raises(RuntimeError, match='mid-write'):
        fileio.publish_folder(target, fail, replace=True)
    assert fileio.sha256_tree(target) == before
    assert sorted(os.listdir(tmp_path)) == ['.seg.lock', 'seg']


def test_publish_folder_refuses_non_empty_target(tmp_path):
    target = tmp_path / 'out'
    target.mkdir()
    fileio.publish_folder(str(target), _fill)  # an empty folder is replaced
    assert osp.isfile(target / 'meta.json')
    with pytest.raises(FileExistsError, match='not empty.*nothing was '
                       'written'):
        fileio.publish_folder(str(target), lambda tmp: None)
    assert osp.isfile(target / 'meta.json')
    assert sorted(os.listdir(tmp_path)) == ['.out.lock', 'out']


def test_stale_temps_of_killed_writers_are_removed(tmp_path):
    killed = [f'.seg{fileio.TMP_MARK}4242-0a1b2c3d',  # this version
              '.seg.old-4242-0a1b2c3d', '.seg-tmp-4242-xyz']  # older ones
    for name in killed:
        os.makedirs(tmp_path / name / 'images')
    (tmp_path / f'.depth{fileio.TMP_MARK}1-ab').mkdir()  # another target's
    fileio.publish_folder(str(tmp_path / 'seg'), _fill)
    assert sorted(os.listdir(tmp_path)) == [
        '.depth.tmp-1-ab', '.seg.lock', 'seg']
    # a work dir's temporaries, whatever the file name
    (tmp_path / f'.iter_4.pth{fileio.TMP_MARK}7-aa').write_bytes(b'x')
    removed = fileio.remove_stale_temps(str(tmp_path))
    assert removed == ['.depth.tmp-1-ab', '.iter_4.pth.tmp-7-aa']


def test_sha256_file_matches_hashlib(tmp_path):
    data = os.urandom(3 * 1024 + 5)
    path = tmp_path / 'blob'
    path.write_bytes(data)
    assert fileio.sha256_file(str(path), chunk=1024) == \
        hashlib.sha256(data).hexdigest()
