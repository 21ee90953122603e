"""tools/misc/build_class_embeddings.py end to end, in a subprocess."""
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


def test_cli_t5_from_pipeline_subfolder(tmp_path):
    """A DiT's own T5 (the SD3 layout, text_encoder_3/ + tokenizer_3/):
    the file the tool writes holds what the config spec computes, and a
    DiTBackbone takes it as its class prompts."""
    from mmdiff.models.backbones import DiTBackbone
    from mmdiff.models.diffusion import tiny_dit_configs
    from mmdiff.models.text import get_or_build_class_embeddings
    from mmdiff.testing import build_tiny_t5
    pipe = build_tiny_t5(str(tmp_path / 'sd3-pipe'), family='sd3')
    names = tmp_path / 'names.txt'
    names.write_text('cat\nliving_room\nsky\n')
    proc = _run('--classes', str(names), '--text-encoder', pipe,
                '--text-encoder-subfolder', 'text_encoder_3',
                '--local-files-only', '--no-progress', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'class embeddings: 3 x 32' in proc.stdout
    assert '(text_encoder_3), t5 (local:sha256:' in proc.stdout
    out = (tmp_path / 'data' / 'embeddings' /
           'names_sd3-pipe-text-encoder-3_vpd.pth')
    emb, meta = load_class_embeddings(out)
    assert meta['encoder'] == 't5'
    assert meta['text_encoder_subfolder'] == 'text_encoder_3'
    spec = get_or_build_class_embeddings(
        str(names), pipe, text_encoder_subfolder='text_encoder_3',
        cache_dir=str(tmp_path / 'cache'), local_files_only=True,
        progress=False)
    torch.testing.assert_close(emb, spec, rtol=0, atol=1e-6)
    transformer, vae = tiny_dit_configs('sd3')
    dit = DiTBackbone(family='sd3', transformer_cfg=transformer,
                      vae_cfg=vae, conditioner=dict(
                          type='ClassPrompts', class_embeddings=str(out)))
    assert torch.equal(dit.conditioner.class_embeddings, emb)
    proc = _run('--classes', str(names), '--text-encoder', pipe,
                '--text-encoder-subfolder', 'text_encoder_2',
                '--local-files-only', cwd=tmp_path)
    assert proc.returncode != 0
    assert 'no text_encoder_2/config.json' in proc.stderr
