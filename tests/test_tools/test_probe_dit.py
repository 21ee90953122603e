"""tools/analysis_tools/probe_features.py sweeps a diffusion transformer's
blocks x timesteps (the DiT demo config: tiny PixArt on the demo VAE)."""
import json
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'dit_pixart-tiny-sfp_demo-seg.py')


def test_probe_sweeps_dit_blocks_and_timesteps(run_tool, tmp_path):
    out = str(tmp_path / 'probe')
    sizes = [f'{split}.dataset.{k}={v}'
             for split in ('train_dataloader', 'val_dataloader')
             for k, v in (('num_train', 8), ('num_val', 2), ('size', 64))]
    proc = run_tool(
        'tools/analysis_tools/probe_features.py', DEMO, '--blocks', '0', '2',
        '--timesteps', '1', '500', '--num-train', '4', '--num-val', '2',
        '--steps', '3', '--out', out, '--cfg-options',
        'custom_hooks.0.steps=2', 'custom_hooks.0.size=64', *sizes,
        cwd=str(tmp_path))
    result = json.load(open(osp.join(out, 'probe.json')))
    assert result['metric'] == 'mIoU' and result['blocks'] == [0, 2]
    assert sorted(result['table']) == ['1', '500']
    assert sorted(result['table']['1']) == ['0', '1']  # output indices
    assert all(0 <= v <= 100 for row in result['table'].values()
               for v in row.values())
    assert 'blk  0 | blk  2' in proc.stdout and 'best: t=' in proc.stdout
    assert osp.getsize(osp.join(out, 'probe.png')) > 0
