"""Distributed training through ``tools/dist_train.sh`` (torchrun, gloo, CPU).

The demo seg config trains 3 iterations in two ways, concurrently:

* 2 processes x batch 2 (``tools/dist_train.sh CONFIG 2``, DDP over gloo);
* 1 process  x batch 4 (``tools/train.py``), the same total batch.

A probe hook (written to the tmp dir, loaded through ``custom_imports``)
stores each rank's per-iteration loss and final parameters. Checked:

* both ranks end with bit-identical parameters (DDP all-reduces gradients,
  every rank applies the same update);
* the mean of the two ranks' losses equals the 1-process loss: at the first
  iteration to ``FIRST_RTOL`` = 1e-6, later to ``LOSS_RTOL`` = 1e-4; final
  parameters agree to the sum of the learning rates used. Why: with the
  InfiniteSampler (same seed) rank r reads samples r, r+2, ... of the
  one-process order, so both runs see the same 4 images per step; the
  cross-entropy is a mean over equally many pixels, so the mean of two
  half-batch losses is the full-batch loss and the all-reduced gradient mean
  is the full-batch gradient. Only float32 summation order differs, so the
  first loss agrees to rounding. Afterwards AdamW's first steps are
  ``lr * g / |g|`` per coordinate: a coordinate whose gradient is at rounding
  level can step +lr in one run and -lr in the other, which is why later
  losses drift up to ~1e-5 relative (measured at most 2.2e-5 at iteration
  3) and parameters to at most ``sum(lr)``. Dropout and random flips draw
  per process, so they are off here (``dropout_ratio=0``, flip ``prob=0``).

The mmdet Mask R-CNN demo config and the GenerativeDepth project's demo run
through the same launcher (2 processes, ranks identical). FlexibleRunner
strategies (FSDP, DeepSpeed ZeRO-2) are GPU configs: this file builds what
can be built on CPU.
"""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SEG_CFG = osp.join(REPO, 'configs', 'demo', 'vpd_tiny-fpn_demo-seg.py')
ITERS = 3
FIRST_RTOL = 1e-6
LOSS_RTOL = 1e-4

PROBE = '''
import os
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Keep this rank's losses; save them with the final parameters."""

    def before_train(self, runner):
        self.losses, self.lrs = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append(float(outputs['loss']))
        self.lrs.append(max(runner.optim_wrapper.get_lr()['lr']))

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save(dict(losses=self.losses, lrs=self.lrs,
                        world=runner.world_size,
                        state={k: v.detach().clone() for k, v in
                               model.state_dict().items()}),
                   os.path.join(runner.work_dir, f'rank{get_rank()}.pth'))
'''

CONFIG = f'''
_base_ = [{SEG_CFG!r}]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets', 'rank_probe'],
    allow_failed_imports=False)
custom_hooks = [dict(type='RankProbeHook')]
# no DemoVAEHook here: a random VAE
model = dict(backbone=dict(vae_weights=None))
'''





def tiny_options(batch_size: int) -> list:
    ds = 'train_dataloader.dataset'
    return [
        f'train_cfg.max_iters={ITERS}', f'train_dataloader.batch_size='
        f'{batch_size}', f'{ds}.num_train=8', f'{ds}.num_val=2',
        f'{ds}.size=64', f'{ds}.pipeline.2.prob=0.0',
        'model.decode_head.dropout_ratio=0.0',
        'val_cfg=None', 'val_dataloader=None', 'val_evaluator=None',
        'default_hooks.logger.interval=1',
        f'default_hooks.checkpoint.interval={ITERS}',
        'randomness.seed=0', 'randomness.deterministic=True',
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _launch_env(folder) -> dict:
    """Environment for the launcher: the repo and ``folder`` (rank probe)
    importable, one thread a process, a free port, no inherited rank."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, str(folder)]),
               OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', PYTHON=sys.executable,
               PORT=str(free_port()))
    for key in ('LOCAL_RANK', 'RANK', 'WORLD_SIZE', 'MASTER_ADDR',
                'MASTER_PORT'):
        env.pop(key, None)
    return env


def _dist_train_two(tmp_path, cfg, work: str, *options: str):
    """tools/dist_train.sh CFG 2 (gloo) with ``--cfg-options``: 2 iterations
    of batch 2 on 8 scenes, no validation, a checkpoint at iteration 2.
    Returns the completed process (asserted to have succeeded)."""
    ds = 'train_dataloader.dataset'
    res = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '2',
         '--work-dir', str(tmp_path / work), '--cfg-options',
         'train_cfg.max_iters=2', 'train_dataloader.batch_size=2',
         f'{ds}.num_train=8', f'{ds}.num_val=2', 'val_cfg=None',
         'val_dataloader=None', 'val_evaluator=None',
         'default_hooks.checkpoint.interval=2', *options],
        cwd=tmp_path, env=_launch_env(tmp_path), capture_output=True,
        text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Run the 1- and 2-process trainings once for the tests below."""
    from mmdiff.datasets.demo_data import ensure_demo_data
    tmp = tmp_path_factory.mktemp('dist')
    ensure_demo_data('seg', root=str(tmp / 'data' / 'demo'), num_train=8,
                     num_val=2, size=64, seed=0)
    (tmp / 'rank_probe.py').write_text(PROBE)
    cfg = tmp / 'probe_cfg.py'
    cfg.write_text(CONFIG)
    env = _launch_env(tmp)
    two = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), str(cfg), '2',
         '--work-dir', str(tmp / 'two'), '--cfg-options',
         *tiny_options(2)], cwd=tmp, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    one = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(cfg),
         '--work-dir', str(tmp / 'one'), '--cfg-options', *tiny_options(4)],
        cwd=tmp, env=env, capture_output=True, text=True)
    out_two = two.communicate()[0].decode()
    assert two.returncode == 0, out_two[-4000:]
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]

    def load(*parts):
        return torch.load(tmp.joinpath(*parts), weights_only=True)
    return dict(one=load('one', 'rank0.pth'), r0=load('two', 'rank0.pth'),
                r1=load('two', 'rank1.pth'), dir=tmp, log=out_two)


def test_two_processes_train(runs):
    assert runs['r0']['world'] == runs['r1']['world'] == 2
    assert runs['one']['world'] == 1
    assert len(runs['r0']['losses']) == ITERS
    assert all(torch.isfinite(torch.tensor(runs['r0']['losses'])))
    # rank 0 wrote the checkpoint and the logs, rank 1 nothing
    assert osp.isfile(runs['dir'] / 'two' / f'iter_{ITERS}.pth')
    ckpt = torch.load(runs['dir'] / 'two' / f'iter_{ITERS}.pth',
                      weights_only=True)
    for k, v in runs['r0']['state'].items():
        assert torch.equal(ckpt['state_dict'][k], v), k


def test_ranks_agree_exactly(runs):
    a, b = runs['r0']['state'], runs['r1']['state']
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # they did see different halves of the batch
    assert runs['r0']['losses'] != runs['r1']['losses']


def test_matches_one_process_with_same_total_batch(runs):
    one = torch.tensor(runs['one']['losses'], dtype=torch.float64)
    two = (torch.tensor(runs['r0']['losses'], dtype=torch.float64) +
           torch.tensor(runs['r1']['losses'], dtype=torch.float64)) / 2
    rels = ((two - one).abs() / one.abs()).tolist()
    print(f'relative loss difference 1 vs 2 processes per iter: {rels}')
    rel = max(rels)
    assert rels[0] <= FIRST_RTOL
    assert rel <= LOSS_RTOL
    worst = max((runs['one']['state'][k].float() - v.float()).abs().max()
                .item() for k, v in runs['r0']['state'].items()
                if v.is_floating_point())
    bound = sum(runs['one']['lrs'])
    print(f'max parameter difference 1 vs 2 processes: {worst:.3e} '
          f'(bound sum(lr) = {bound:.3e})')
    assert worst <= bound


DET_CFG = osp.join(REPO, 'configs', 'demo',
                   'mask-rcnn_vpd_tiny-fpn_demo-coco.py')


def test_mmdet_config_two_processes(tmp_path):
    """The same launcher runs an mmdet config (Mask R-CNN on the tiny VPD):
    it trains and both ranks end with identical parameters."""
    from mmdiff.datasets.demo_data import ensure_demo_data
    size = config_value(DET_CFG, 'image_size')
    # written once here: two ranks writing it at once would race
    ensure_demo_data('coco', root=str(tmp_path / 'data' / 'demo'),
                     num_train=8, num_val=2, size=size, seed=0)
    (tmp_path / 'rank_probe.py').write_text(PROBE)
    cfg = tmp_path / 'probe_det.py'
    cfg.write_text(CONFIG.replace(repr(SEG_CFG), repr(DET_CFG)))
    _dist_train_two(tmp_path, cfg, 'det')
    r0, r1 = (torch.load(tmp_path / 'det' / f'rank{r}.pth', weights_only=True)
              for r in (0, 1))
    assert r0['world'] == 2 and len(r0['losses']) == 2
    assert all(torch.isfinite(torch.tensor(r0['losses'] + r1['losses'])))
    for k, v in r0['state'].items():
        assert torch.equal(v, r1['state'][k]), k


GEN_DEPTH_CFG = osp.join(REPO, 'projects', 'GenerativeDepth', 'configs',
                         'generative-depth_tiny_demo-nyu.py')
GEN_DEPTH_PROBE_CFG = f'''
_base_ = [{GEN_DEPTH_CFG!r}]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets',
             'projects.GenerativeDepth.generative_depth', 'rank_probe'],
    allow_failed_imports=False)
custom_hooks = [dict(type='RankProbeHook')]
# no DemoVAEHook here: a random VAE; 64-pixel scenes
model = dict(vae_weights=None, data_preprocessor=dict(size=(64, 64)))
'''


def test_generative_depth_two_processes(tmp_path):
    """The generative-depth project's demo (mmdiff.GenerativeDepth, an mmseg
    segmentor outside mmdiff's package) through the same launcher: 2
    processes over gloo, 2 iterations on 64-pixel scenes; it trains, the
    ranks end with identical U-Net weights (the frozen VAE too), rank 0
    writes the checkpoint."""
    from mmdiff.datasets.demo_data import ensure_demo_data
    ensure_demo_data('depth', root=str(tmp_path / 'data' / 'demo'),
                     num_train=8, num_val=2, size=64, seed=0)
    (tmp_path / 'rank_probe.py').write_text(PROBE)
    cfg = tmp_path / 'probe_gen_depth.py'
    cfg.write_text(GEN_DEPTH_PROBE_CFG)
    res = _dist_train_two(tmp_path, cfg, 'gen',
                          'train_dataloader.dataset.size=64',
                          'default_hooks.logger.interval=1')
    assert 'loss_latent_mse' in res.stdout + res.stderr
    r0, r1 = (torch.load(tmp_path / 'gen' / f'rank{r}.pth', weights_only=True)
              for r in (0, 1))
    assert r0['world'] == r1['world'] == 2 and len(r0['losses']) == 2
    assert all(torch.isfinite(torch.tensor(r0['losses'] + r1['losses'])))
    assert r0['losses'] != r1['losses']  # each rank its half of the batch
    assert any(k.startswith('unet.') for k in r0['state'])
    for k, v in r0['state'].items():
        assert torch.equal(v, r1['state'][k]), k
    ckpt = torch.load(tmp_path / 'gen' / 'iter_2.pth', weights_only=True)
    assert torch.equal(ckpt['state_dict']['unet.conv_in.weight'],
                       r0['state']['unet.conv_in.weight'])


def config_value(path: str, key: str):
    from mmengine.config import Config
    return Config.fromfile(path)[key]


# ---------------------------------------------------------------------------
# FlexibleRunner strategies for the SD1.5 U-Net (GPU configs, CPU checks)
# ---------------------------------------------------------------------------
VPD_CFG = osp.join(REPO, 'configs', 'vpd',
                   'vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py')
FSDP_CFG = VPD_CFG.replace('fpn_8xb2', 'fpn_fsdp-8xb2')
ZERO2_CFG = VPD_CFG.replace('fpn_8xb2', 'fpn_deepspeed-zero2-8xb2')


@pytest.mark.parametrize('path,strategy', [(FSDP_CFG, 'FSDPStrategy'),
                                           (ZERO2_CFG, 'DeepSpeedStrategy')])
def test_strategy_overlays_keep_the_recipe(path, strategy):
    from mmengine.config import Config
    cfg, ref = Config.fromfile(path), Config.fromfile(VPD_CFG)
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == strategy
    for key in ('model', 'param_scheduler', 'train_cfg', 'train_dataloader'):
        assert cfg[key] == ref[key], key
    assert cfg.optim_wrapper.optimizer == ref.optim_wrapper.optimizer
    assert cfg.optim_wrapper.paramwise_cfg == ref.optim_wrapper.paramwise_cfg
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'  # GPU configs


def test_fsdp_strategy_constructs():
    from mmengine._strategy import FSDPStrategy
    from mmengine.config import Config
    from mmengine.registry import FUNCTIONS, STRATEGIES
    import mmdiff.engine  # noqa: F401
    cfg = Config.fromfile(FSDP_CFG)
    strategy = STRATEGIES.build(cfg.strategy)
    assert isinstance(strategy, FSDPStrategy)
    policy = cfg.strategy.model_wrapper.auto_wrap_policy.type
    with FUNCTIONS.switch_scope_and_registry(None) as registry:
        assert callable(registry.get(policy))


def test_deepspeed_strategy_constructs():
    """Runs where the DeepSpeed extra is installed (requirements/
    deepspeed.txt; it installs on CPU, `bash tools/setup_env.sh --deepspeed`):
    mmengine's DeepSpeedStrategy asserts the import in __init__."""
    pytest.importorskip('deepspeed')
    from mmengine._strategy import DeepSpeedStrategy
    from mmengine.config import Config
    from mmengine.registry import OPTIM_WRAPPERS, STRATEGIES
    cfg = Config.fromfile(ZERO2_CFG)
    strategy = STRATEGIES.build(cfg.strategy)
    assert isinstance(strategy, DeepSpeedStrategy)
    assert OPTIM_WRAPPERS.get(cfg.optim_wrapper.type) is not None
    assert strategy.config['zero_optimization']['stage'] == 2


def _seg_batch(size=64):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(0)
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 4, (1, size, size),
                                                     generator=gen))
    sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size),
                             pad_shape=(size, size)))
    image = torch.randint(0, 256, (3, size, size), generator=gen,
                          dtype=torch.uint8)
    return dict(inputs=[image], data_samples=[sample])


@pytest.fixture
def gloo_world_of_one():
    import torch.distributed as dist
    if dist.is_initialized():
        pytest.skip('a process group is already initialised')
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:'
                            f'{free_port()}', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_fsdp_wrap_policy_trains_tiny_vpd_on_cpu(gloo_world_of_one):
    """The FSDP config's wrapper (policy, use_orig_params, lr_mult groups) on
    the tiny VPD seg model, world size 1 over gloo: a train step runs and
    updates the U-Net. A size-based policy (units around the U-Net and its
    up blocks, whose forward the backbone cuts short) fails in backward;
    that is why the config uses mmdiff.diffusion_block_wrap_policy."""
    import copy
    from functools import partial

    from mmengine.config import Config
    from mmengine.model.wrappers import MMFullyShardedDataParallel
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import MODELS, DefaultScope, init_default_scope
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import size_based_auto_wrap_policy

    import mmdiff.engine  # noqa: F401
    import mmdiff.models  # noqa: F401

    seg = Config.fromfile(SEG_CFG)
    seg.model.backbone.vae_weights = None  # random VAE: no training hook
    wrapper = copy.deepcopy(Config.fromfile(FSDP_CFG).strategy.model_wrapper)
    wrapper.auto_wrap_policy.min_num_params = 20000  # tiny model: host parts
    wrapper.pop('type', None)
    init_default_scope('mmseg')
    try:
        torch.manual_seed(0)
        model = MODELS.build(seg.model)
        model.init_weights()
        fsdp = MMFullyShardedDataParallel(
            module=copy.deepcopy(model), device_id=torch.device('cpu'),
            **copy.deepcopy(wrapper))
        units = [m for m in fsdp.modules()
                 if isinstance(m, FullyShardedDataParallel)]
        assert len(units) > 2
        optim = build_optim_wrapper(fsdp, copy.deepcopy(seg.optim_wrapper))
        unet = dict(fsdp.named_parameters())
        key = next(k for k in unet if 'up_blocks.1' in k and 'weight' in k)
        before = unet[key].detach().clone()
        losses = fsdp.train_step(_seg_batch(), optim)
        assert torch.isfinite(losses['loss'])
        assert not torch.equal(before, dict(fsdp.named_parameters())[key])

        wrapper.auto_wrap_policy = partial(size_based_auto_wrap_policy,
                                           min_num_params=20000)
        bad = MMFullyShardedDataParallel(
            module=copy.deepcopy(model), device_id=torch.device('cpu'),
            **wrapper)
        optim = build_optim_wrapper(bad, copy.deepcopy(seg.optim_wrapper))
        with pytest.raises(AssertionError, match='BACKWARD'):
            bad.train_step(_seg_batch(), optim)
    finally:
        DefaultScope._instance_dict.clear()


# ---------------------------------------------------------------------------
# DiffusionPretrainer through the launcher
# ---------------------------------------------------------------------------
PRETRAIN_CFG = osp.join(REPO, 'configs', 'pretrain',
                        'diffusion-pretrain_tiny_demo-unlabelled.py')
PRETRAIN_PROBE = PROBE + '''

@HOOKS.register_module()
class ExportCountHook(RankProbeHook):
    """RankProbeHook + how many times this rank ran the real
    stage_diffusers (the export hook imports it at each call; what it
    stages is published once trusted)."""

    def before_train(self, runner):
        super().before_train(runner)
        import mmdiff.models.pretrainers.export as export
        self.exports = 0
        real = export.stage_diffusers

        def counted(*args, **kwargs):
            self.exports += 1
            return real(*args, **kwargs)
        export.stage_diffusers = counted

    def after_train(self, runner):
        super().after_train(runner)
        path = os.path.join(runner.work_dir, f'rank{get_rank()}.pth')
        probe = torch.load(path, weights_only=True)
        probe['exports'] = self.exports
        torch.save(probe, path)
'''
PRETRAIN_PROBE_CFG = f'''
_base_ = [{PRETRAIN_CFG!r}]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets',
             'mmdiff.datasets.demo_datasets', 'rank_probe'],
    allow_failed_imports=False)
# no DemoVAEHook here: a random VAE; the demo's EMA and export hooks
model = dict(vae_weights=None)
custom_hooks = [
    dict(type='EMAHook', momentum=0.01, priority='NORMAL'),
    dict(type='mmdiff.DiffusersExportHook', num_samples=2, sample_steps=2),
    dict(type='mmdiff.NaNGuardHook'),
    dict(type='ExportCountHook')
]
'''


def test_pretrainer_two_processes(tmp_path):
    """The demo pretraining config (shrunk as test_pretrain.py shrinks it:
    64-pixel scenes, batch 2 a rank, 2 iterations) on 2 processes over
    gloo: both ranks train their half of the batch and end with identical
    U-Net weights (DDP), only rank 0 exports, once, a complete folder of
    the EMA weights its checkpoint holds, which a backbone loads. (Two
    guards keep rank 1 out: mmengine's ``Runner.save_checkpoint`` is
    ``master_only``, so its hooks never run there, and the export hook
    checks the rank too; removing the latter alone leaves this passing.)"""
    from safetensors.torch import load_file

    from mmdiff.datasets.demo_data import ensure_demo_data
    from mmdiff.models.backbones import DiffusionBackbone
    ds = 'train_dataloader.dataset'
    # written once here: two ranks writing it at once would race
    ensure_demo_data('seg', root=str(tmp_path / 'data' / 'demo' /
                                     'unlabelled'),
                     num_train=8, num_val=2, size=64,
                     seed=config_value(PRETRAIN_CFG, 'unlabelled_seed'))
    (tmp_path / 'rank_probe.py').write_text(PRETRAIN_PROBE)
    cfg = tmp_path / 'probe_pretrain.py'
    cfg.write_text(PRETRAIN_PROBE_CFG)
    _dist_train_two(tmp_path, cfg, 'pre', f'{ds}.size=64',
                    f'{ds}.pipeline.1.scale=64',
                    f'{ds}.pipeline.2.crop_size=(64,64)',
                    'default_hooks.logger.interval=1',
                    'randomness.deterministic=True')
    work = tmp_path / 'pre'
    r0, r1 = (torch.load(work / f'rank{r}.pth', weights_only=True)
              for r in (0, 1))
    assert r0['world'] == r1['world'] == 2
    assert len(r0['losses']) == len(r1['losses']) == 2
    assert all(torch.isfinite(torch.tensor(r0['losses'] + r1['losses'])))
    assert r0['losses'] != r1['losses']  # each rank its half of the batch
    assert any(k.startswith('unet.') for k in r0['state'])
    for k, v in r0['state'].items():
        assert torch.equal(v, r1['state'][k]), k
    # one export, by rank 0, complete, of the checkpoint's (EMA) U-Net
    assert (r0['exports'], r1['exports']) == (1, 0)
    folder = work / 'diffusers'
    assert sorted(os.listdir(folder)) == [
        'mmdiff_pretrain.json', 'scheduler', 'unet', 'vae']
    assert os.listdir(work / 'samples') == ['iter_2.png']
    assert not [n for n in os.listdir(work) if 'tmp' in n.lower()]
    ckpt = torch.load(work / 'iter_2.pth', weights_only=False)
    unet = load_file(str(folder / 'unet' /
                         'diffusion_pytorch_model.safetensors'))
    for key, value in unet.items():
        assert torch.equal(ckpt['state_dict']['unet.' + key], value), key
    backbone = DiffusionBackbone(pretrained=str(folder), scale_latents=True,
                                 local_files_only=True)
    backbone.init_weights()
    assert torch.equal(backbone.unet.conv_in.weight,
                       unet['conv_in.weight'])
