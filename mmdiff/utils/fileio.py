"""Every file and folder mmdiff writes goes through here: whole or not at all.

A reader (a resumed run, another process, a user after a crash) must never
find a half-written checkpoint, embedding file or data set. Three helpers:

* :func:`atomic_write`: ``write(tmp)`` fills a temporary sibling
  ``.<name>.tmp-<pid>-<token>``, which is fsynced and ``os.replace``d onto
  the target (atomic on POSIX and Windows), then the folder is fsynced; on
  any error the temporary file is removed and the target is left as it was.
  :func:`atomic_write_bytes`, :func:`atomic_write_text` and
  :func:`atomic_write_json` are the common cases.
* :func:`publish_folder`: the same for a whole folder, under a lock file
  (:func:`folder_lock`, ``filelock``) so that concurrent writers on other
  processes, containers or nodes wait for each other; temporary folders of
  killed writers are removed (:func:`remove_stale_temps`) before a new one
  is made.
* :func:`sha256_file` / :func:`sha256_tree`: the one place file hashes are
  computed (checkpoint names, demo data meta files, encoder identities).

Temporary files and folders get the permissions of a normal ``open`` /
``mkdir`` (``0o666`` / ``0o777`` less the umask), not ``mkstemp``'s private
``0o600`` / ``0o700``, so the published result is readable like any other.
Disk-full and permission errors are re-raised naming the folder and the fix
(:func:`explain_write_errors`).
"""
import errno
import hashlib
import json
import os
import os.path as osp
import re
import secrets
import shutil
from contextlib import contextmanager
from typing import Callable, Dict, Iterable, Optional

#: Marks temporary siblings: ``.<name>.tmp-<pid>-<token>``.
TMP_MARK = '.tmp-'


def _os_error(error: BaseException) -> Optional[OSError]:
    """The OS error behind ``error``: itself, one in its ``__cause__`` /
    ``__context__`` chain (torch's zip writer raises ``RuntimeError`` from
    the ``OSError`` of the file object it writes to), or the ``Os { code:
    N }`` of a Rust writer's message (safetensors)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error
        code = re.search(r'Os \{ code: (\d+)', str(error))
        if code:
            num = int(code.group(1))
            return OSError(num, os.strerror(num))
        error = error.__cause__ or error.__context__
    return None


def torch_save(obj, path: str) -> None:
    """``torch.save`` through a Python file object, so that a failed write
    raises with its ``OSError`` (errno) attached: given a file name, torch's
    C++ writer only says ``basic_ios::clear: iostream error``. For
    :func:`atomic_write`: ``atomic_write(path, lambda tmp: torch_save(obj,
    tmp))``."""
    import torch
    with open(path, 'wb') as f:
        torch.save(obj, f)


@contextmanager
def explain_write_errors(path: str, action: str):
    """Turn disk-full and permission errors into errors naming the fix.

    Args:
        path (str): The file or folder being written.
        action (str): What was being written, e.g. 'saving a checkpoint'.
    """
    try:
        yield
    except Exception as error:  # noqa: BLE001  (re-raised unless an OS error)
        e = _os_error(error)
        if e is None:
            raise
        folder = osp.dirname(osp.abspath(path))
        where = f'{action} ({path})'
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(
                e.errno, f'No space left on the disk holding {folder} while '
                f'{where}: {e.strerror}. {path} was not replaced: the '
                'previous files are intact. Fix: free space there (df -h '
                f'{folder}; e.g. delete old work_dirs or checkpoints) or '
                'write elsewhere (--work-dir / another output path).'
            ) from error
        if e.errno == errno.EFBIG:
            raise OSError(
                e.errno, f'File too large while {where}: {e.strerror}. The '
                f'file system holding {folder} or the process\'s file-size '
                f'limit does not allow a file this big; {path} was not '
                'replaced. Fix: write to a file system without a small file '
                'size cap (FAT32 / vfat stop at 4 GB: use ext4, xfs, NTFS or '
                'exFAT) or lift the limit (`ulimit -f unlimited`).') from error
        if e.errno == errno.EROFS:
            raise OSError(
                e.errno, f'Cannot write to {folder} while {where}: the file '
                f'system is mounted read-only ({e.strerror}). Fix: write '
                'elsewhere (--work-dir / another output path, or '
                '$MMDIFF_CACHE for caches) or remount it read-write.') from error
        if e.errno in (errno.EACCES, errno.EPERM):
            raise OSError(
                e.errno, f'Cannot write to {folder} while {where}: '
                f'{e.strerror}. Fix: make the folder writable (chmod u+w '
                f'{folder}) or write elsewhere (--work-dir / another output '
                'path).') from error
        raise


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(folder: str, exclude: Iterable[str] = ()) -> Dict[str, str]:
    """``{relative path: sha256}`` of every file below ``folder``.

    Paths use ``/`` on every OS and come sorted; symbolic links are not
    followed. ``exclude`` names relative paths to leave out (e.g. the meta
    file that stores this listing).
    """
    skip, out = set(exclude), {}
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = osp.join(dirpath, name)
            rel = osp.relpath(path, folder).replace(os.sep, '/')
            if rel not in skip and not osp.islink(path):
                out[rel] = sha256_file(path)
    return dict(sorted(out.items()))


def fsync_dir(path: str) -> None:
    """Make renames in a folder durable (no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def temp_sibling(path: str) -> str:
    """A fresh temporary name beside ``path``: ``.<name>.tmp-<pid>-<hex>``."""
    path = osp.abspath(path).rstrip(os.sep)
    return osp.join(osp.dirname(path), f'.{osp.basename(path)}{TMP_MARK}'
                    f'{os.getpid()}-{secrets.token_hex(4)}')


def _remove(path: str) -> None:
    if osp.isdir(path) and not osp.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif osp.lexists(path):
        os.remove(path)


def atomic_write(path: str, write: Callable[[str], None],
                 action: Optional[str] = None,
                 final_name: Optional[Callable[[str], str]] = None) -> str:
    """Write a file through a temporary sibling, fsync, then rename.

    Args:
        path (str): The file to write; its folder is created if missing.
        write (callable): ``write(tmp_path)`` produces the file (e.g.
            ``lambda tmp: torch.save(obj, tmp)``).
        action (str, optional): What is written, for error messages.
            Defaults to ``'writing <path>'``.
        final_name (callable, optional): ``final_name(tmp_path)`` gives the
            name to publish under, from the written bytes (e.g. a hash
            suffix). Defaults to None: ``path``.

    Returns:
        str: The path written.

    Raises:
        OSError: Disk full or not writable, naming the fix; ``path`` is then
            left as it was and no temporary file remains.
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    tmp = temp_sibling(path)
    try:
        with explain_write_errors(path, action or f'writing {path}'):
            os.makedirs(folder, exist_ok=True)
            write(tmp)
            _fsync_file(tmp)
            if final_name is not None:
                path = final_name(tmp)
            os.replace(tmp, path)
            fsync_dir(folder)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return path


def atomic_write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: str, obj, **dump_kwargs) -> str:
    """``json.dump`` ``obj`` to ``path`` atomically (a trailing newline
    when ``indent`` is given); returns ``path``."""
    text = json.dumps(obj, **dump_kwargs)
    return atomic_write_text(path, text + ('\n' if 'indent' in dump_kwargs
                                           else ''))


def folder_lock(target: str):
    """The lock of ``target``'s writers: ``filelock.FileLock`` on
    ``.<name>.lock`` beside it; re-entrant within a process."""
    from filelock import FileLock
    target = osp.abspath(target).rstrip(os.sep)
    return FileLock(osp.join(osp.dirname(target),
                             f'.{osp.basename(target)}.lock'),
                    is_singleton=True)


def remove_stale_temps(folder: str, name: Optional[str] = None,
                       files_only: bool = False) -> list:
    """Remove temporary siblings left by killed writers.

    Only safe when no writer of them is alive: call it under the target's
    lock (:func:`publish_folder` does), or where one process owns the folder
    (a training run's work dir).

    Args:
        folder (str): Where to look.
        name (str, optional): Only the temporaries of this target name;
            None: every ``.*.tmp-*`` entry. Defaults to None.
        files_only (bool): Leave folders alone: a temporary FOLDER may be
            a complete one a publisher was killed with, which its owner
            recovers (e.g. :func:`mmdiff.models.pretrainers.export.
            recover_exports`). Defaults to False.

    Returns:
        list: The removed names.
    """
    if not osp.isdir(folder):
        return []
    if name is None:
        pattern = re.compile(r'^\.(?:.*\.)?(?:tmp|old)-')
    else:  # `.<name>-tmp-` / `-old-`: the temp names of mmdiff <= 0.x
        pattern = re.compile(rf'^\.{re.escape(name)}[.-](?:tmp|old)-')
    removed = [n for n in sorted(os.listdir(folder)) if pattern.match(n)
               and not (files_only and osp.isdir(osp.join(folder, n)))]
    for entry in removed:
        _remove(osp.join(folder, entry))
    return removed


def refuse_non_empty(target: str,
                     fix: str = 'remove it or choose another output folder'
                     ) -> None:
    """Raise ``FileExistsError`` if ``target`` is a non-empty folder (or a
    file): what :func:`publish_folder` without ``replace`` would refuse,
    checked before the work starts."""
    if osp.isfile(target) or (osp.isdir(target) and os.listdir(target)):
        raise FileExistsError(f'{target} exists and is not empty; nothing '
                              f'was written. Fix: {fix}.')


def conversion_problem(inputs: Iterable[str], out: str) -> Optional[str]:
    """Why a converter reading ``inputs`` into the folder ``out`` cannot
    start (an input file missing, ``out`` not empty), or None: checked
    before the work, so that a typo costs seconds, not a conversion."""
    for path in inputs:
        if not osp.isfile(path):
            return f'{path} does not exist.'
    try:
        refuse_non_empty(out, fix='remove it or pass another --out')
    except FileExistsError as e:
        return str(e)
    return None


def _fsync_tree(folder: str) -> None:
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = osp.join(dirpath, name)
            if not osp.islink(path):  # links point at data not ours
                _fsync_file(path)
        fsync_dir(dirpath)


def fill_sibling(target: str, fill: Callable[[str], None],
                 action: Optional[str] = None, tag: str = 'tmp') -> str:
    """``fill`` a new temporary sibling of ``target`` and fsync it.

    Args:
        target (str): The folder the content is meant for.
        fill (callable): ``fill(tmp_folder)`` writes the content.
        action (str, optional): What is written, for error messages.
        tag (str): The mark in its name, ``.<name>.<tag>-<pid>-<hex>``:
            ``'tmp'`` (removed as stale when its writer dies) or another
            one its owner looks after. Defaults to 'tmp'.

    Returns:
        str: The filled folder (not published: see :func:`replace_folder`).
        On any error it is removed.
    """
    tmp = temp_sibling(target)
    if tag != 'tmp':
        tmp = tmp.replace(TMP_MARK, f'.{tag}-', 1)
    os.makedirs(osp.dirname(tmp), exist_ok=True)
    try:
        with explain_write_errors(target, action or f'writing {target}'):
            os.mkdir(tmp)  # 0o777 less the umask, like any folder
            fill(tmp)
            _fsync_tree(tmp)
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def replace_folder(source: str, target: str, replace: bool = True,
                   action: Optional[str] = None) -> str:
    """Rename the complete folder ``source`` onto ``target``.

    Call it under :func:`folder_lock` of ``target``. An existing ``target``
    is moved aside to ``.<name>.old-*`` first (``replace``) and deleted once
    ``source`` is in place; a kill between the two renames leaves both
    complete folders, for their owner to recover.

    Raises:
        FileExistsError: ``target`` is a non-empty folder and ``replace``
            is False (``source`` is then left where it is).
    """
    parent = osp.dirname(osp.abspath(target))
    old = None
    try:
        with explain_write_errors(target, action or f'writing {target}'):
            if replace and osp.lexists(target):
                old = temp_sibling(target).replace(TMP_MARK, '.old-', 1)
                os.replace(target, old)
            try:
                os.replace(source, target)
            except OSError as e:
                if old is not None:  # put the previous one back
                    os.replace(old, target)
                    old = None
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                refuse_non_empty(target)
                raise
            fsync_dir(parent)
    finally:
        if old:
            _remove(old)
    return target


def publish_folder(target: str, fill: Callable[[str], None],
                   replace: bool = False,
                   action: Optional[str] = None) -> str:
    """Make a folder appear complete or not at all.

    Under :func:`folder_lock` (re-entrant: callers that check ``target``
    first may hold it already): removes temporaries of killed writers,
    creates a temporary sibling with normal permissions, lets
    ``fill(tmp)`` write into it, fsyncs every file and renames it onto
    ``target`` (:func:`fill_sibling`, :func:`replace_folder`). On any error
    the temporary folder is removed and ``target`` is left as it was.

    Args:
        target (str): The folder to publish.
        fill (callable): ``fill(tmp_folder)`` writes the content.
        replace (bool): Replace an existing ``target`` (moved aside, then
            deleted once the new one is in place). Defaults to False: an
            existing empty folder is replaced, a non-empty one is an error.
        action (str, optional): What is written, for error messages.

    Returns:
        str: ``target``.

    Raises:
        FileExistsError: ``target`` is a non-empty folder and ``replace`` is
            False.
    """
    target = os.fspath(target).rstrip(os.sep) or os.sep
    parent = osp.dirname(osp.abspath(target))
    action = action or f'writing {target}'
    lock = folder_lock(target)
    with explain_write_errors(target, action):  # read-only, no space, ...
        os.makedirs(parent, exist_ok=True)
        lock.acquire()
    try:
        remove_stale_temps(parent, osp.basename(osp.abspath(target)))
        tmp = fill_sibling(target, fill, action)
        try:
            replace_folder(tmp, target, replace, action)
        finally:
            if osp.lexists(tmp):
                _remove(tmp)
    finally:
        lock.release()
    return target
