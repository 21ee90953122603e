"""One training run per work dir, and resuming from the work dir's own files.

Two runs writing one work dir interleave their checkpoints, and
``last_checkpoint`` / ``diffusers/`` end up belonging to whichever wrote
last, both exiting 0. :func:`work_dir_lock` holds a ``filelock`` lock on
``<work_dir>/.mmdiff_train.lock`` for the whole run (an OS lock: released by
the kernel when its process dies, so a killed run never blocks the next
one) and records who holds it in ``.mmdiff_train.owner.json`` (the lock file
itself is truncated by every process that tries it), so a refused run names
the other process.

``last_checkpoint`` holds an absolute path (mmengine's format): in a copied
or moved work dir it names the original dir's file. :func:`latest_checkpoint`
reads it relative to the work dir it is in.
"""
import datetime
import json
import os
import os.path as osp
import socket
import sys
from contextlib import contextmanager
from typing import Optional

from mmdiff.utils.fileio import atomic_write_json

LOCK_FILE = '.mmdiff_train.lock'
OWNER_FILE = '.mmdiff_train.owner.json'


class WorkDirBusyError(RuntimeError):
    """Another live training run holds the work dir."""


def _is_main_rank() -> bool:
    """Rank 0 of a launched job (or no launcher): the one that locks."""
    for var in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(var) not in (None, ''):
            return os.environ[var] == '0'
    return True


def _owner(work_dir: str) -> str:
    try:
        with open(osp.join(work_dir, OWNER_FILE)) as f:
            info = json.load(f)
        return (f"pid {info['pid']} on host {info['host']}, started "
                f"{info['started']}: {info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return 'a process that has not recorded itself yet'


@contextmanager
def work_dir_lock(work_dir: str):
    """Hold ``work_dir`` for one training run; refuse a second live one.

    Only rank 0 of a distributed job locks (all ranks share the dir).

    Args:
        work_dir (str): The run's work dir (created if missing).

    Raises:
        WorkDirBusyError: Another live process holds it; the message names
            it (pid, host, command) and the way out.
    """
    if not _is_main_rank():
        yield
        return
    from filelock import FileLock, Timeout
    work_dir = osp.abspath(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    lock = FileLock(osp.join(work_dir, LOCK_FILE), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise WorkDirBusyError(
            f'The work dir {work_dir} is in use by another training run '
            f'({_owner(work_dir)}). Two runs in one work dir would mix their '
            'checkpoints, last_checkpoint and exports; nothing was written. '
            'Fix: wait for that run to end or stop it (kill <pid> on that '
            'host), or train into another --work-dir. (A run that was '
            'killed holds no lock: its lock ended with its process.)'
        ) from None
    try:
        atomic_write_json(osp.join(work_dir, OWNER_FILE), dict(
            pid=os.getpid(), host=socket.gethostname(),
            started=datetime.datetime.now().isoformat(timespec='seconds'),
            command=' '.join([osp.basename(sys.executable)] + sys.argv)))
        yield
    finally:
        lock.release()


def latest_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, in this dir.

    When it names a file of another folder (the work dir was copied or
    moved) and a file of that name is in ``work_dir``, that one; else the
    path as written (a custom checkpoint ``out_dir``), or None without
    ``last_checkpoint``.
    """
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            path = f.read().strip()
    except OSError:
        return None
    if not path:
        return None
    local = osp.join(osp.abspath(work_dir), osp.basename(path))
    if osp.isfile(local):
        return local
    return path
