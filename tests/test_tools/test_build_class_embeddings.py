"""tools/misc/build_class_embeddings.py end to end, in a subprocess."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from mmdiff.models.text import (append_mean_row, compute_class_embeddings,
                                load_class_embeddings)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'misc', 'build_class_embeddings.py')


def _tiny_clip_builder():
    from mmdiff.testing.clip import build_test_clip
    return build_test_clip


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    pytest.importorskip('transformers')
    return _tiny_clip_builder()(str(tmp_path_factory.mktemp('m') / 'clip'))


def _run(*args, cwd):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''), HF_HUB_OFFLINE='1')
    return subprocess.run([sys.executable, TOOL, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_builds_file_with_mean_row(clip_dir, tmp_path):
    names = tmp_path / 'scenes.txt'
    names.write_text('bedroom\nliving_room\nkitchen\n')
    out = tmp_path / 'emb.safetensors'
    proc = _run('--classes', str(names), '--text-encoder', clip_dir,
                '--templates', 'imagenet80', '--max-length', '20',
                '--mmseg-mean-row', '--out', str(out), '--local-files-only',
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'class embeddings: 4 x 32' in proc.stdout
    assert f'written:   {out}' in proc.stdout
    emb, meta = load_class_embeddings(out)
    assert meta['classes'] == ['bedroom', 'living_room', 'kitchen']
    assert len(meta['templates']) == 80 and meta['max_length'] == 20
    assert meta['mean_row'] is True and meta['shape'] == [4, 32]
    ref = compute_class_embeddings(str(names), clip_dir, 'imagenet80',
                                   max_length=20, local_files_only=True,
                                   progress=False)
    torch.testing.assert_close(emb, append_mean_row(ref), rtol=0, atol=1e-6)
    assert osp.isfile(str(out) + '.json')


def test_cli_default_out_and_errors(clip_dir, tmp_path, monkeypatch, capsys,
                                    load_tool):
    """In-process (the subprocess path is covered above): fast."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    names = tmp_path / 'n.txt'
    names.write_text('cat\n')
    assert tool.main(['--classes', str(names), '--text-encoder', clip_dir,
                      '--output', 'tokens', '--max-length', '8',
                      '--local-files-only', '--no-progress']) == 0
    out = tmp_path / 'data' / 'embeddings' / 'n_clip_vpd_tokens_len8.pth'
    assert f'written:   {osp.join("data", "embeddings", out.name)}' in \
        capsys.readouterr().out
    emb, meta = load_class_embeddings(out)
    assert emb.shape == (1, 8, 32) and meta['output'] == 'tokens'

    with pytest.raises(ValueError, match='nyu_scenes'):
        tool.main(['--classes', 'ade21k', '--text-encoder', clip_dir])
    with pytest.raises(OSError, match='Looked for'):
        tool.main(['--classes', str(names), '--text-encoder',
                   str(tmp_path / 'missing'), '--local-files-only'])
