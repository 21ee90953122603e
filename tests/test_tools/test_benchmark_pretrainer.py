"""tools/analysis_tools/benchmark_pretrainer.py (mmdiff.benchmark.pretrainer):
the SD1.5 domain-adaptation configs (full and LoRA) measured with the tiny
U-Net swapped in (``--unet tiny``), each half in its own process; the memory split is checked against
what AdamW, LoRA and EMA must hold. The real-size path (``--random-weights``)
is checked on the config only (building SD1.5 is too big for a test)."""
import json
import os
import os.path as osp

import pytest

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOL = 'tools/analysis_tools/benchmark_pretrainer.py'
CFG = ('configs/pretrain/'
       'diffusion-pretrain_sd15{}_8xb4-15k_my-images-512x512.py')
CONFIGS = dict(full=CFG.format(''), lora=CFG.format('-lora-r8'),
               caption=CFG.format('-caption'))
WARMUP, ITERS = 1, 1


@pytest.fixture(scope='module')
def tool(load_tool):
    return load_tool(TOOL)


@pytest.fixture(scope='module')
def bench(tool, tmp_path_factory):
    """``bench(name) -> (result, json written by --out)``, run once each."""
    done = {}

    def get(name):
        if name not in done:
            tmp = tmp_path_factory.mktemp(f'bench_{name}')
            out = str(tmp / 'bench.json')
            result = tool.main([
                '--config', osp.join(REPO, CONFIGS[name]), '--unet', 'tiny',
                '--warmup', str(WARMUP), '--iters', str(ITERS), '--batch',
                '1', '--size', '64', '--threads', '1', '--work-dir',
                str(tmp / 'work'), '--out', out])
            with open(out) as f:
                done[name] = result, json.load(f)
        return done[name]

    return get


def _halves(result):
    return result['halves']['runner'], result['halves']['plain']


@pytest.mark.parametrize('name', ['full', 'lora'])
def test_halves_ran_apart_on_the_same_model(bench, name):
    result, written = bench(name)
    assert written == json.loads(json.dumps(result))
    runner, plain = _halves(result)
    assert len({runner['pid'], plain['pid'], os.getpid()}) == 3
    assert runner['init_checksum'] == pytest.approx(plain['init_checksum'],
                                                    rel=1e-12)
    for half in (runner, plain):
        assert len(half['step_s']) == WARMUP + ITERS
        assert half['peak_rss_kib'] > 0 and half['threads'] == 1
        assert half['model']['grad_checkpointing'] is True
        assert half['memory'] == dict(half['memory'], **{
            k: runner['memory'][k] for k in
            ('unet_params', 'trainable_params', 'grads', 'optimizer_state',
             'vae', 'num_unet_params', 'num_trainable_params')})
    assert result['ratio'] == pytest.approx(
        result['runner_s'] / result['plain_s'])
    assert result['host']['threads'] == 1 and result['host']['torch']


def test_lora_trains_and_stores_the_adapters_only(bench):
    result, _ = bench('lora')
    runner, _ = _halves(result)
    m = runner['memory']
    assert runner['model']['lora'] == dict(rank=8)
    assert runner['optimizer']['lr'] == 1e-4  # the LoRA config's
    assert 0 < 20 * m['num_trainable_params'] < m['num_unet_params']
    assert m['grads'] == m['trainable_params']
    assert m['optimizer_state'] == 2 * m['trainable_params']  # AdamW
    assert m['ema'] is None and runner['ema_hooks'] == []


def test_full_trains_everything_with_ema(bench):
    result, _ = bench('full')
    runner, plain = _halves(result)
    m = runner['memory']
    assert m['trainable_params'] == m['unet_params'] > 0
    assert m['grads'] == m['unet_params']
    assert m['optimizer_state'] == 2 * m['unet_params']  # AdamW
    # mmengine's EMAHook copies the whole model (VAE too), the plain loop
    # averages the trainable weights (diffusers' EMAModel)
    assert plain['memory']['ema'] == m['trainable_params']
    assert m['ema'] >= m['unet_params'] + m['vae']
    assert runner['ema_hooks'][0]['momentum'] == 1e-4


def test_real_size_config(tool):
    """--random-weights: SD1.5's shapes without the download, every other
    lever of the config kept, the demo scenes as data."""
    from mmdiff.benchmark.pretrainer import bench_cfg
    from mmdiff.models.diffusion.presets import SD_VAE, real_unet_cfg

    def cfg(name, *extra):
        args = tool.parse_args(['--config', osp.join(REPO, CONFIGS[name]),
                                   *extra, '--work-dir', '/nonexistent'])
        return bench_cfg(args)

    for name in ('full', 'lora'):
        full = cfg(name, '--random-weights')
        assert full.model.pretrained is None
        assert full.model.unet_cfg == real_unet_cfg(
            'stable-diffusion-v1-5/stable-diffusion-v1-5')
        assert full.model.vae_cfg == SD_VAE
        assert full.model.grad_checkpointing and full.model.snr_gamma == 5.0
        assert full.train_dataloader.dataset.type == 'DemoSegDataset'
        assert full.param_scheduler is None
    assert cfg('lora', '--random-weights').model.lora == dict(rank=8)
    assert [h.type for h in cfg('full').custom_hooks] == ['EMAHook']
    assert cfg('full').model.pretrained  # without the flag: the weights
    assert cfg('full', '--no-ema').custom_hooks == []
    with pytest.raises(ValueError, match='conditioning'):
        cfg('caption', '--random-weights')
    demo = bench_cfg(tool.parse_args(['--work-dir', '/nonexistent']))
    assert demo.model.unet_cfg['block_out_channels'] == (32, 64, 64, 64)
