"""tools/analysis_tools/benchmark_backbone.py on the tiny SD-shaped model."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest

pytest.importorskip('ldm.modules.diffusionmodules.openaimodel')
pytest.importorskip('mmseg.models.backbones.vpd')

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_backbone.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('benchmark_backbone', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('bench')
    out = tmp / 'report.json'
    proc = subprocess.run(
        [sys.executable, TOOL, '--unet-config', 'tiny', '--input-size', '64',
         '--batch', '1', '--repeats', '2', '--warmup', '0', '--num-tokens',
         '5', '--cases',
         'mmdiff:infer,mmseg:infer,mmdiff_p2:infer,dit:infer',
         '--dit-config', 'tiny', '--dit-taps', '0', '2',
         '--neck', '--check',
         '--work-dir', str(tmp / 'weights'), '--json', str(out)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_cases_measured(report):
    data, _ = report
    assert data['errors'] == {}
    assert data['meta']['matmul_flops'] > 0
    for impl in ('mmdiff', 'mmseg'):
        case = data['cases'][f'{impl}:infer']
        assert len(case['times']) == 2 and len(case['unet_times']) == 2
        assert all(t > 0 for t in case['times'] + case['unet_times'])
        assert case['peak_bytes'] >= case['base_bytes'] > 0
        assert case['param_bytes'] > 0
        assert case['unet_flops'] > 0
        assert case['forward_flops'] > case['unet_flops']  # + VAE encoder
        assert not case['peak_includes_build']
    # Same converted weights, inputs and FPN: the same features.
    assert len(data['max_abs_diff']) == 4
    assert max(data['max_abs_diff']) < 1e-3


def test_ratios_come_from_measured_numbers(report):
    data, stdout = report
    cases, rows = data['cases'], data['summary']['rows']
    by_key = {row['key']: row for row in rows}
    rate = data['meta']['matmul_flops']
    for key, field in (('infer.times', 'times'),
                       ('infer.unet_times', 'unet_times')):
        row = by_key[key]
        for stat, pick in (('min', min), ('max', max)):
            mine = pick(cases['mmdiff:infer'][field])
            theirs = pick(cases['mmseg:infer'][field])
            assert row['mmdiff'][stat] == pytest.approx(mine)
            assert row['ratio'][stat] == pytest.approx(mine / theirs)
    flops = by_key['infer.unet_flops']
    assert flops['ratio']['min'] == pytest.approx(
        cases['mmdiff:infer']['unet_flops'] /
        cases['mmseg:infer']['unet_flops'])
    util = by_key['infer.unet_util']
    assert util['mmdiff']['max'] == pytest.approx(
        cases['mmdiff:infer']['unet_flops'] /
        min(cases['mmdiff:infer']['unet_times']) / rate)
    medians = [r['ratio']['median'] for r in rows if r['key'] in (
        'infer.times', 'infer.unet_times', 'infer.peak_bytes')]
    summary = data['summary']['ratio_summary']
    assert summary['min'] == pytest.approx(min(medians))
    assert summary['max'] == pytest.approx(max(medians))
    # The printed markdown table.
    assert stdout.startswith('| metric | unit | mmdiff')
    assert '| forward latency | s |' in stdout
    assert data['markdown'] in stdout


def test_vae_level_case_against_stride_8(report):
    """mmdiff_p2 (vae_taps=(1, ), FPN on 5 levels from stride 4) is
    reported against mmdiff (4 levels from stride 8) in a second table."""
    data, stdout = report
    p2, base = data['cases']['mmdiff_p2:infer'], data['cases']['mmdiff:infer']
    # the FPN's outputs: one level more, the first at stride 4 of 64 px
    assert [lvl[-1] for lvl in p2['levels']] == [16, 8, 4, 2, 1]
    assert [lvl[-1] for lvl in base['levels']] == [8, 4, 2, 1]
    assert p2['forward_flops'] > base['forward_flops']  # the P2 FPN level
    assert p2['unet_flops'] == base['unet_flops']  # the same U-Net pass
    rows = {r['key']: r for r in data['p2_summary']['rows']}
    assert data['p2_summary']['pair'] == ['mmdiff_p2', 'mmdiff']
    row = rows['infer.times']
    assert row['ratio']['min'] == pytest.approx(
        min(p2['times']) / min(base['times']))
    assert '| metric | unit | mmdiff + vae_taps' in stdout
    assert 'With `vae_taps` vs without (same run):' in stdout


def test_dit_case_against_the_unet(report):
    """The DiT case (tiny SD3.5 layout here) is measured in the same run
    and reported against mmdiff's U-Net in its own table."""
    data, stdout = report
    dit, base = data['cases']['dit:infer'], data['cases']['mmdiff:infer']
    # FPN on its 2 taps at stride 16 of 64 px
    assert [lvl[-1] for lvl in dit['levels']] == [4, 4]
    assert dit['unet_flops'] > 0
    assert dit['forward_flops'] > dit['unet_flops']  # + VAE encoder, FPN
    rows = {r['key']: r for r in data['dit_summary']['rows']}
    assert data['dit_summary']['pair'] == ['dit', 'mmdiff']
    assert rows['infer.times']['ratio']['min'] == pytest.approx(
        min(dit['times']) / min(base['times']))
    assert '| metric | unit | DiT (SD3.5-medium)' in stdout


def test_train_summary_splits_memory():
    tool = _load_tool()
    gb = 10**9
    cases = {
        f'{impl}:train': dict(times=[2.0 * k, 3.0 * k], base_bytes=4 * gb,
                              peak_bytes=(9 + k) * gb, grad_bytes=2 * gb,
                              optim_state_bytes=2 * gb,
                              activation_bytes=(1 + k) * gb)
        for impl, k in (('mmdiff', 1), ('mmseg', 2))
    }
    summary = tool.summarise(cases, rate=1e11)
    rows = {r['key']: r for r in summary['rows']}
    assert rows['train.activation_bytes']['ratio']['min'] == \
        pytest.approx(2 / 3)
    assert rows['train.times']['ratio']['median'] == pytest.approx(0.5)
    assert 'infer.times' not in rows
    report = dict(summary=summary, meta=dict(matmul_flops=1e11, threads=2),
                  errors={'mmseg:infer': 'skipped'})
    text = tool.markdown(report)
    assert '| train activations | GB | 2.00 | 3.00 | 0.67 |' in text
    assert 'mmseg:infer: not measured (skipped)' in text
