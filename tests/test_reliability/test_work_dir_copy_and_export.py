"""Findings 1, 3, 4 and 11 (disk full) of issue 24, through
``tools/train.py``.

The pretraining demo (EMA, ``DiffusersExportHook``, ``NaNGuardHook``)
trains with a checkpoint at 2 and 4; the disk is full at the second save
(``torch.save`` raises ENOSPC). The error says nothing was replaced, and
``diffusers/`` must then still hold the export of iteration 2 (it used to
be replaced by iteration 4's before the checkpoint write failed).

The work dir is copied (``cp -a``) and, in the copy, left as a kill between
the two renames of an export's publish leaves it: no ``diffusers/``, the
previous export as ``.diffusers.old-*`` and the newer complete one as
``.diffusers.tmp-*``. The copy is resumed with ``--resume`` at a learning
rate that blows the weights up. Then:

1. the original work dir is untouched (its ``last_finite.pth`` was
   replaced before), and ``last_checkpoint`` and the printed advice of the
   copy name the copy's files;
4. the newest complete export was restored (both used to be deleted as
   stale temporaries);
3. ``diffusers/`` holds the export of the checkpoint the NaN guard points
   at (finite weights), never one of the weights that diverged (it used to
   be replaced before the checkpoint was verified).
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'test_tools'))
from test_pretrain import PRETRAIN, TINY  # noqa: E402
from test_resume import TRAIN, _env  # noqa: E402

UNET = osp.join('unet', 'diffusion_pytorch_model.safetensors')
BLOW_UP = ['train_cfg.max_iters=8', 'default_hooks.checkpoint.interval=1',
           'optim_wrapper.optimizer.lr=1e6']


# tools/train.py on a disk that fills up at the checkpoint of iteration 4
FULL_AT_4 = '''
import errno, os, runpy, sys
from mmengine.fileio.backends.local_backend import LocalBackend
_put = LocalBackend.put
def put(self, obj, filepath):
    if '.iter_4.pth.tmp-' in str(filepath):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return _put(self, obj, filepath)
LocalBackend.put = put
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def _snapshot(folder: str) -> dict:
    """Every entry below ``folder``: inode, size, modification time."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = os.lstat(osp.join(dirpath, name))
            out[osp.relpath(osp.join(dirpath, name), folder)] = (
                st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _meta(folder: str) -> dict:
    with open(osp.join(folder, 'mmdiff_pretrain.json')) as f:
        return json.load(f)


def test_resume_in_a_copied_work_dir_writes_only_there(tmp_path):
    orig, copy = str(tmp_path / 'orig'), str(tmp_path / 'copy')
    first = subprocess.run(
        [sys.executable, '-c', FULL_AT_4, TRAIN, PRETRAIN, '--work-dir',
         orig, '--cfg-options', *TINY], cwd=tmp_path, env=_env(),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert first.returncode != 0, first.stdout[-3000:]
    assert 'No space left on the disk' in first.stdout, first.stdout[-3000:]
    assert 'was not replaced: the previous files are intact' in first.stdout
    # 11. ... and so it is: the export is still iteration 2's
    assert not osp.exists(osp.join(orig, 'iter_4.pth'))
    assert _meta(osp.join(orig, 'diffusers'))['iter'] == 2
    subprocess.run(['cp', '-a', orig, copy], check=True)
    before = _snapshot(orig)

    # the copy as a kill between the publish's two renames leaves it
    newest = osp.join(copy, '.diffusers.tmp-999-aaaa')
    older = osp.join(copy, '.diffusers.old-999-bbbb')
    os.rename(osp.join(copy, 'diffusers'), newest)
    shutil.copytree(newest, older)
    meta = _meta(older)
    meta['iter'] = 1
    with open(osp.join(older, 'mmdiff_pretrain.json'), 'w') as f:
        json.dump(meta, f)

    run = subprocess.run(
        [sys.executable, TRAIN, PRETRAIN, '--work-dir', copy, '--resume',
         '--cfg-options', *TINY, *BLOW_UP], cwd=tmp_path, env=_env(),
        text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = run.stdout
    assert run.returncode != 0, out[-3000:]
    assert 'Non-finite loss at iteration' in out, out[-3000:]

    # 1. the original is untouched; the copy's pointers name the copy
    assert _snapshot(orig) == before
    good = re.search(r'finite loss is (\S+);', out).group(1)
    assert good.startswith(copy + os.sep), good
    with open(osp.join(copy, 'last_checkpoint')) as f:
        assert f.read().strip() == good
    printed = re.search(r'e\.g\.\n\s+(python .*)\n', out).group(1)
    assert f'--resume {good}' in printed and orig not in printed

    # 4. the newest complete export was restored, not deleted
    assert 'Restored the diffusers export of iteration 2' in out, out[-3000:]

    # 3. the export is the checkpoint the guard trusts, finite
    ckpt = torch.load(good, map_location='cpu', weights_only=False)
    folder = osp.join(copy, 'diffusers')
    assert _meta(folder)['iter'] == ckpt['meta']['iter']
    unet = load_file(osp.join(folder, UNET))
    for key, value in unet.items():
        assert torch.isfinite(value).all(), key
        assert torch.equal(ckpt['state_dict']['unet.' + key], value), key
    failed_at = int(re.search(r'Non-finite loss at iteration (\d+)',
                              out).group(1))
    assert ckpt['meta']['iter'] <= failed_at - 2
