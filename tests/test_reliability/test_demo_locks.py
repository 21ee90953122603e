"""Finding 1 of issue 14: demo data and the demo VAE under a real lock.

The probe: a writer whose pid is not visible (another container or node
sharing the folder) had its live temp folder deleted by a second writer,
and a partial set was published with a valid ``demo_meta.json``; the second
writer to finish also replaced a complete set. Now writers take a lock file
beside the target, the meta file lists every file's sha256, and every open
checks it.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time

import pytest

from mmdiff.datasets import demo_data
from mmdiff.datasets.demo_data import META_FILE, ensure_demo_data
from mmdiff.datasets.demo_vae import ensure_demo_vae
from mmdiff.models.diffusion import tiny_vae_cfg

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
ARGS = dict(num_train=4, num_val=2, size=32, seed=0)

# A slow writer in another process: it announces that it is writing, then
# takes seconds to finish (as a big set on a slow share does).
SLOW_WRITER = '''
import os, sys, time
sys.path.insert(0, {repo!r})
from mmdiff.datasets import demo_data
make = demo_data.DEMO_MAKERS['seg']
def slow(folder, *args):
    make(folder, *args)
    open({started!r}, 'w').close()
    time.sleep(3)
demo_data.DEMO_MAKERS['seg'] = slow
demo_data.ensure_demo_data('seg', {root!r}, **{args!r})
'''


def _visible(root):
    return sorted(n for n in os.listdir(root) if not n.endswith('.lock'))


def test_writer_with_invisible_pid_is_waited_for(tmp_path, monkeypatch):
    root, started = str(tmp_path / 'demo'), str(tmp_path / 'started')
    os.makedirs(root)
    code = SLOW_WRITER.format(repo=REPO, started=started, root=root,
                              args=ARGS)
    writer = subprocess.Popen([sys.executable, '-c', code])
    try:
        deadline = time.time() + 120
        while not osp.exists(started):
            assert writer.poll() is None and time.time() < deadline
            time.sleep(0.05)

        # to this process every pid looks dead (another pid namespace)
        def invisible(pid, sig):
            raise ProcessLookupError(pid)

        monkeypatch.setattr(os, 'kill', invisible)
        target = ensure_demo_data('seg', root, **ARGS)  # waits for the lock
        assert writer.wait(60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    meta = json.load(open(osp.join(target, META_FILE)))
    count = demo_data.expected_file_count('seg', 4, 2)
    assert len(meta['files']) == count
    assert _visible(root) == ['seg']
    ino = os.stat(target).st_ino
    ensure_demo_data('seg', root, **ARGS)  # complete: never replaced
    assert os.stat(target).st_ino == ino


def test_incomplete_or_modified_set_is_refused(tmp_path):
    root = str(tmp_path)
    target = ensure_demo_data('seg', root, **ARGS)
    # a file added beside the set (CaptionPrompts' captions.json) is fine
    with open(osp.join(target, 'captions.json'), 'w') as f:
        f.write('{}')
    assert ensure_demo_data('seg', root, **ARGS) == target
    ann = osp.join(target, 'annotations', 'training', 'demo_00001.png')
    os.remove(ann)
    with pytest.raises(ValueError, match=r'incomplete or modified.*'
                       r'missing.*demo_00001.*Fix: delete it'):
        ensure_demo_data('seg', root, **ARGS)
    ensure_demo_data('seg', root, **ARGS, force=True)
    with open(ann, 'ab') as f:
        f.write(b'x')
    with pytest.raises(ValueError, match=r'changed.*demo_00001'):
        ensure_demo_data('seg', root, **ARGS)


def test_stale_temp_of_a_dead_writer_is_removed(tmp_path):
    root = str(tmp_path)
    os.makedirs(osp.join(root, '.seg-tmp-12345-abc', 'images'))
    ensure_demo_data('seg', root, **ARGS)
    assert _visible(root) == ['seg']


VAE_WRITER = '''
import sys
sys.path.insert(0, {repo!r})
from mmdiff.datasets.demo_vae import ensure_demo_vae
from mmdiff.models.diffusion import tiny_vae_cfg
print('WROTE' if ensure_demo_vae({out!r}, tiny_vae_cfg(), steps=2,
      batch_size=1, size=32) else 'FOUND')
'''


def test_demo_vae_two_writers_one_training(tmp_path):
    out = str(tmp_path / 'vae')
    code = VAE_WRITER.format(repo=REPO, out=out)
    procs = [subprocess.Popen([sys.executable, '-c', code],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, OMP_NUM_THREADS='1'))
             for _ in range(2)]
    said = sorted(p.communicate(timeout=240)[0].split()[-1] for p in procs)
    assert [p.returncode for p in procs] == [0, 0]
    assert said == ['FOUND', 'WROTE']
    assert _visible(tmp_path) == ['vae']
    weights = [n for n in os.listdir(out) if n.endswith('.safetensors')][0]
    with open(osp.join(out, weights), 'ab') as f:
        f.write(b'x')
    with pytest.raises(FileExistsError, match='incomplete or modified'):
        ensure_demo_vae(out, tiny_vae_cfg(), steps=2, batch_size=1, size=32)


@pytest.mark.parametrize('task', demo_data.DEMO_TASKS)
def test_every_task_reopens_as_complete(tmp_path, task):
    """The count check knows each task's layout: a freshly made set of every
    task opens again (the panoptic set once failed it: 642 files listed,
    640 expected)."""
    root = str(tmp_path)
    target = ensure_demo_data(task, root, **ARGS)
    meta = json.load(open(osp.join(target, META_FILE)))
    assert len(meta['files']) == demo_data.expected_file_count(task, 4, 2)
    assert ensure_demo_data(task, root, **ARGS) == target
