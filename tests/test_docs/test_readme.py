"""README.md's commands and snippets, as printed.

Every fenced ``shell``/``python`` block of the README carries a marker
comment (``<!-- readme-test: KIND -->``) on the line before it:

- ``run``: run in a fresh folder that sees the checkout's ``configs/``,
  ``tools/`` and ``demo/`` (a user's checkout), in README order, each shell
  command exactly as printed (``python`` is this interpreter), with one
  change: ``tools/train.py`` gets the suite's shortening ``--cfg-options``
  appended (2 iterations, batch 2, a 2-step demo VAE, no validation), and
  the checkpoint a later block names (``iter_600.pth``) is that run's last
  checkpoint, linked under the printed name. Python blocks run as a script.
- ``check``: needs SD weights, a data set, the network or the whole suite:
  ``bash -n`` on the block, every config it names resolves
  (``Config.fromfile``), every script it names exists, every ``make``
  target it names is in the Makefile.
- ``config``: a config snippet: saved to a file of its own and loaded.
"""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
README = osp.join(ROOT, 'README.md')
FENCE = re.compile(r'^```(\w*)\n(.*?)^```', re.M | re.S)
MARKER = re.compile(r'<!-- readme-test: (\w+) -->\n$')
SHORT = ['train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
         'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
         'default_hooks.checkpoint.interval=2',
         'default_hooks.logger.interval=1', 'custom_hooks.0.steps=2',
         'custom_hooks.0.size=64']


def readme_blocks(path: str = README) -> list:
    """``[(kind, language, code, line)]`` of every fenced block; kind is
    the marker's, or None when the block has none."""
    with open(path) as f:
        text = f.read()
    out = []
    for m in FENCE.finditer(text):
        before = text[:m.start()]
        marker = MARKER.search(before[-60:])
        out.append((marker.group(1) if marker else None, m.group(1),
                    m.group(2), before.count('\n') + 1))
    return out


def shell_commands(code: str) -> list:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = code.replace('\\\n', ' ')
    return [shlex.split(line, comments=True) for line in joined.splitlines()
            if shlex.split(line, comments=True)]


def _check_names(code: str) -> None:
    makefile = open(osp.join(ROOT, 'Makefile')).read()
    for argv in shell_commands(code):
        if argv[0] == 'make':
            for target in argv[1:]:
                assert re.search(rf'^{re.escape(target)}:', makefile, re.M), (
                    f'make {target}: no such Makefile target')
        for word in argv:
            if re.match(r'(configs|projects)/.*\.py$', word):
                Config.fromfile(osp.join(ROOT, word))  # resolves its bases
            elif re.match(r'(tools|demo)/.*\.(py|sh)$', word):
                assert osp.isfile(osp.join(ROOT, word)), word


def test_every_block_is_marked_and_known():
    blocks = readme_blocks()
    assert blocks
    for kind, lang, _, line in blocks:
        assert kind in ('run', 'check', 'config'), (
            f'README.md:{line}: a ```{lang} block without a known '
            '<!-- readme-test: run|check|config --> marker')
        assert lang in ('shell', 'python'), f'README.md:{line}: ```{lang}'


def test_check_blocks_parse_and_name_real_files():
    blocks = [b for b in readme_blocks() if b[0] == 'check']
    assert blocks
    for _, lang, code, line in blocks:
        assert lang == 'shell', f'README.md:{line}'
        proc = subprocess.run(['bash', '-n'], input=code, text=True,
                              capture_output=True)
        assert proc.returncode == 0, f'README.md:{line}: {proc.stderr}'
        _check_names(code)


def test_config_snippets_load(tmp_path):
    blocks = [b for b in readme_blocks() if b[0] == 'config']
    assert blocks
    for i, (_, lang, code, line) in enumerate(blocks):
        assert lang == 'python', f'README.md:{line}'
        path = tmp_path / f'snippet_{i}.py'
        path.write_text(code)
        cfg = Config.fromfile(str(path))
        assert cfg.model.backbone.type == 'mmdiff.VPD', f'README.md:{line}'


def _link_printed_checkpoints(code: str, cwd: str) -> None:
    """A checkpoint the block names that the shortened run did not write
    (it stopped at iteration 2): that work dir's last checkpoint."""
    for rel in re.findall(r'work_dirs/[\w./-]+\.pth', code):
        path = osp.join(cwd, rel)
        if osp.exists(path):
            continue
        with open(osp.join(osp.dirname(path), 'last_checkpoint')) as f:
            os.symlink(f.read().strip(), path)


def test_run_blocks_as_printed(tmp_path):
    """The own-data flow (example folders, the tiny own-data configs
    trained) and inference on its checkpoint (image_demo.py and the mmseg
    API), in one user folder, in README order."""
    blocks = [b for b in readme_blocks() if b[0] == 'run']
    assert blocks
    cwd = str(tmp_path)
    for name in ('configs', 'tools', 'demo'):
        os.symlink(osp.join(ROOT, name), osp.join(cwd, name))
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    for _, lang, code, line in blocks:
        _link_printed_checkpoints(code, cwd)
        if lang == 'python':
            runs = [[sys.executable, '-c', code]]
        else:
            runs = []
            for argv in shell_commands(code):
                assert argv[0] == 'python', f'README.md:{line}: {argv}'
                argv = [sys.executable] + argv[1:]
                if argv[1] == 'tools/train.py':
                    argv += ['--cfg-options', *SHORT]
                runs.append(argv)
        for argv in runs:
            proc = subprocess.run(argv, cwd=cwd, env=env, text=True,
                                  capture_output=True, timeout=900)
            assert proc.returncode == 0, (
                f'README.md:{line}: {argv[1:3]} failed:\n'
                f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')
    # what the blocks promise: the example folders, checkpoints, pictures
    for path in ('data/my_seg/masks/val', 'data/my_coco/annotations/val.json',
                 'work_dirs/mask-rcnn_vpd_tiny-fpn_my-coco/iter_2.pth',
                 'outputs/seg.png', 'outputs/vis/demo_00000.jpg'):
        assert osp.exists(osp.join(cwd, path)), path
