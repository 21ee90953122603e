"""The pretrainer's training step under mmengine's Runner vs a plain loop.

Library code of ``tools/analysis_tools/benchmark_pretrainer.py`` (its
docstring says what is measured). :func:`benchmark` runs each half in a
fresh process of its own (``python -m mmdiff.benchmark.pretrainer``, the
same mmdiff), so that each peak memory is its own; the options travel as
``bench_args.json`` in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook

import mmdiff
from mmdiff.apis.host_checks import unwrap
from mmdiff.utils.fileio import atomic_write_json
from .measure import tensor_bytes
from .report import machine

DEMO = 'diffusion-pretrain_tiny_demo-unlabelled.py'
SD15_ID = 'stable-diffusion-v1-5/stable-diffusion-v1-5'
HALVES = ('runner', 'plain')
GIB = 1024**3


def demo_config() -> str:
    """The tiny demo pretraining config of the mmdiff in use (``.mim``)."""
    return osp.join(osp.dirname(mmdiff.__file__), '.mim', 'configs',
                    'pretrain', DEMO)


def _is_ema_hook(hook: dict) -> bool:
    return str(hook.get('type', '')).split('.')[-1] == 'EMAHook'


def bench_cfg(args) -> Config:
    """The config both halves build from (see the module docstring)."""
    from mmdiff.models.diffusion import tiny_unet_cfg, tiny_vae_cfg
    from mmdiff.models.diffusion.presets import SD_VAE, real_unet_cfg
    cfg = Config.fromfile(args.config)
    model = cfg.model
    if model.get('conditioning', 'none') != 'none':
        raise ValueError(
            f"{args.config}: conditioning={model.conditioning!r}; the "
            "benchmark feeds the demo scenes (no captions, no classes), so "
            "it measures conditioning='none' configs only.")
    pretrained = model.get('pretrained')
    shapes = None
    if args.unet == 'tiny':
        shapes = tiny_unet_cfg(), tiny_vae_cfg()
    elif args.unet == 'sd15':
        shapes = real_unet_cfg(SD15_ID), SD_VAE
    elif pretrained is not None and args.random_weights:
        shapes = real_unet_cfg(pretrained), SD_VAE
    if shapes is not None:
        model.update(pretrained=None, original_config=None,
                     unet_cfg=dict(shapes[0]), vae_cfg=dict(shapes[1]))
    model.update(vae_weights=None, unet_weights=None)  # random costs the same
    demo = Config.fromfile(demo_config())
    cfg.default_scope = demo.default_scope
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    cfg.custom_imports = dict(
        imports=imports + [m for m in demo.custom_imports.imports
                           if m not in imports],
        allow_failed_imports=False)
    cfg.train_dataloader = demo.train_dataloader
    cfg.work_dir = args.work_dir
    ds = cfg.train_dataloader.dataset
    ds.update(num_train=max(args.batch * 2, 16), size=args.size,
              data_root=osp.join(cfg.work_dir, 'data', 'seg'))
    ds.pipeline[1]['scale'] = args.size
    ds.pipeline[2]['crop_size'] = (args.size, args.size)
    cfg.train_dataloader.batch_size = args.batch
    cfg.custom_hooks = [h for h in cfg.get('custom_hooks', [])
                        if _is_ema_hook(h) and not args.no_ema]
    cfg.param_scheduler = None  # a constant lr, as the plain loop
    cfg.default_hooks.checkpoint.interval = 10**9
    cfg.default_hooks.checkpoint.save_last = False
    cfg.train_cfg = dict(type='IterBasedTrainLoop',
                         max_iters=args.warmup + args.iters)
    cfg.log_level = 'WARNING'
    return cfg


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _unet_checksum(model) -> float:
    """A fingerprint of the initial U-Net (both halves start equal)."""
    return float(sum(p.detach().double().abs().sum()
                     for p in model.unet.parameters()))


class _GradBytes:
    """Optimizer step pre-hook: the bytes of the gradients at each step."""

    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, optimizer, args, kwargs) -> None:
        self.bytes = max(self.bytes, tensor_bytes(
            p.grad for g in optimizer.param_groups for p in g['params']))


class _StepTimer(Hook):
    """Records each iteration's time (data loading excluded) and images."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.times, self.inputs, self._start = [], [], None
        self.grads, self.checksum = _GradBytes(), None

    def before_train(self, runner) -> None:
        self.checksum = _unet_checksum(unwrap(runner.model))
        runner.optim_wrapper.optimizer.register_step_pre_hook(self.grads)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.inputs.append(torch.stack(data_batch['inputs']).clone())
        _sync()
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        _sync()
        self.times.append(time.perf_counter() - self._start)


def static_bytes(model, optimizer, grads: int, ema_tensors) -> dict:
    """Memory of the training state, from the tensors themselves."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return dict(
        unet_params=tensor_bytes(model.unet.parameters()),
        trainable_params=tensor_bytes(trainable),
        grads=grads,
        optimizer_state=tensor_bytes(
            v for s in optimizer.state.values() for k, v in s.items()
            if k != 'step'),
        ema=None if ema_tensors is None else tensor_bytes(ema_tensors),
        vae=tensor_bytes(list(model.vae.parameters()) +
                         list(model.vae.buffers())),
        num_unet_params=sum(p.numel() for p in model.unet.parameters()),
        num_trainable_params=sum(p.numel() for p in trainable))


def runner_half(cfg: Config) -> dict:
    from mmengine.hooks import EMAHook
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    timer = _StepTimer()
    runner.register_hook(timer)
    runner.train()
    ema = [h.ema_model.module for h in runner.hooks
           if isinstance(h, EMAHook)]
    ema_tensors = None if not ema else \
        list(ema[0].parameters()) + list(ema[0].buffers())
    torch.save(timer.inputs, osp.join(cfg.work_dir, 'bench_inputs.pt'))
    return dict(step_s=timer.times, init_checksum=timer.checksum,
                memory=static_bytes(unwrap(runner.model),
                                    runner.optim_wrapper.optimizer,
                                    timer.grads.bytes, ema_tensors))


def plain_loop(model, inputs, optim_cfg: dict, max_norm: float,
               ema_momentum=None) -> tuple:
    """The same steps without mmengine: per-step seconds, optimizer, EMA."""
    from diffusers.training_utils import EMAModel
    unet, vae, sched = model.unet, model.vae, model.scheduler
    device = next(unet.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    optim_cfg = dict(optim_cfg)
    optim = getattr(torch.optim, optim_cfg.pop('type'))(params, **optim_cfg)
    grads = _GradBytes()
    optim.register_step_pre_hook(grads)
    ema = None if ema_momentum is None else \
        EMAModel(params, decay=1.0 - ema_momentum)
    mean = torch.tensor([127.5] * 3, device=device).view(1, 3, 1, 1)
    times = []
    for batch in inputs:
        start = time.perf_counter()
        x = batch.to(device)[:, [2, 1, 0]].float()  # BGR->RGB
        x = (x - mean) / mean
        with model.autocast(device.type):
            with torch.no_grad():
                post = vae.encode(x).latent_dist
                lat = post.sample() if model.latent_mode == 'sample' \
                    else post.mode()
                lat = (lat * vae.config.scaling_factor).float()
            noise = torch.randn_like(lat)
            t = torch.randint(0, sched.config.num_train_timesteps,
                              (lat.shape[0], ), device=device).long()
            noisy = sched.add_noise(lat, noise, t)
            cond = torch.zeros(lat.shape[0], 1, model.cross_attention_dim,
                               device=device, dtype=unet.dtype)
            pred = unet(noisy, t, encoder_hidden_states=cond).sample
        target = noise if model.prediction_type == 'epsilon' else \
            sched.get_velocity(lat, noise, t)
        mse = F.mse_loss(pred.float(), target.float(),
                         reduction='none').mean(dim=(1, 2, 3))
        loss = mse.mean()
        if model.snr_gamma is not None:
            from diffusers.training_utils import compute_snr
            snr = compute_snr(sched, t)
            weight = torch.clamp(snr, max=model.snr_gamma)
            loss = (mse * weight / (snr if model.prediction_type ==
                                    'epsilon' else snr + 1)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optim.step()
        optim.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(params)
        _sync()
        times.append(time.perf_counter() - start)
    return times, optim, grads.bytes, ema


def plain_half(cfg: Config) -> dict:
    from mmengine.runner import set_random_seed
    from mmengine.utils import import_modules_from_strings

    import_modules_from_strings(**cfg.custom_imports)
    from mmdiff.registry import MODELS
    set_random_seed(cfg.randomness.seed)  # as the runner, before the build
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(_device()).train()
    checksum = _unet_checksum(model)
    inputs = torch.load(osp.join(cfg.work_dir, 'bench_inputs.pt'))
    ema_hooks = [h for h in cfg.custom_hooks if _is_ema_hook(h)]
    momentum = ema_hooks[0].get('momentum', 0.0002) if ema_hooks else None
    times, optim, grads, ema = plain_loop(
        model, inputs, cfg.optim_wrapper.optimizer,
        cfg.optim_wrapper.clip_grad.max_norm, momentum)
    return dict(step_s=times, init_checksum=checksum,
                memory=static_bytes(model, optim, grads,
                                    None if ema is None else
                                    ema.shadow_params))


def _device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def host() -> dict:
    """The benchmarks' machine record, plus this run's threads and device."""
    return dict(machine(), threads=torch.get_num_threads(), device=_device())


def run_half(args, half: str) -> None:
    """One half in this (fresh) process; results to its JSON file."""
    cfg = bench_cfg(args)
    result = (runner_half if half == 'runner' else plain_half)(cfg)
    result.update(
        pid=os.getpid(), threads=torch.get_num_threads(),
        device=_device(),
        median_s=statistics.median(result['step_s'][args.warmup:]),
        peak_rss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        cuda_max_allocated=torch.cuda.max_memory_allocated()
        if torch.cuda.is_available() else None,
        model=dict(lora=cfg.model.get('lora'),
                   grad_checkpointing=cfg.model.get('grad_checkpointing',
                                                    False),
                   prediction_type=cfg.model.get('prediction_type'),
                   snr_gamma=cfg.model.get('snr_gamma'),
                   amp_dtype=cfg.model.get('amp_dtype'),
                   unet_cfg=cfg.model.get('unet_cfg'),
                   pretrained=cfg.model.get('pretrained')),
        optimizer=dict(cfg.optim_wrapper.optimizer),
        clip_grad=dict(cfg.optim_wrapper.clip_grad),
        ema_hooks=[dict(h) for h in cfg.custom_hooks])
    atomic_write_json(osp.join(args.work_dir, f'bench_{half}.json'),
                      result, indent=2)


def label(args) -> str:
    """The U-Net measured, for the report: tiny, sd15, a hub id or 'config'."""
    if args.unet:
        return args.unet
    model = Config.fromfile(args.config).model
    if model.get('pretrained'):
        return model.pretrained + (' (random weights)'
                                   if args.random_weights else '')
    from mmdiff.models.diffusion import tiny_unet_cfg
    return 'tiny' if model.get('unet_cfg') == tiny_unet_cfg() else 'config'


def report(result: dict) -> str:
    """The printed summary of :func:`benchmark`'s result."""
    r, p = result['halves']['runner'], result['halves']['plain']
    dtype = r['model']['amp_dtype'] or 'fp32'
    lines = [
        f"{result['unet']} U-Net, batch {result['batch']} x "
        f"{result['size']} px, {dtype}, {r['optimizer']['type']}, "
        f"{result['threads']} threads, "
        f"median of {result['iters']} steps after {result['warmup']} "
        'warm-up:',
        f"  mmengine Runner step   {result['runner_s'] * 1000:8.1f} ms",
        f"  plain PyTorch loop     {result['plain_s'] * 1000:8.1f} ms",
        f"  runner / plain         {result['ratio']:8.3f}",
        f"memory (GiB), each half its own process on {r['device']}:",
        f"  {'':24}{'runner':>10}{'plain':>10}"]

    def row(name, get):
        vals = [get(h) for h in (r, p)]
        cells = ''.join(f'{"-" if v is None else f"{v / GIB:.4g}":>10}'
                        for v in vals)
        lines.append(f'  {name:24}{cells}')

    row('peak RSS (ru_maxrss)', lambda h: h['peak_rss_kib'] * 1024)
    if r['cuda_max_allocated'] is not None:
        row('CUDA max allocated', lambda h: h['cuda_max_allocated'])
    for key, name in (('unet_params', 'U-Net parameters'),
                      ('trainable_params', 'trainable parameters'),
                      ('grads', 'gradients'),
                      ('optimizer_state', 'optimizer state'),
                      ('ema', 'EMA copy'), ('vae', 'VAE')):
        row(name, lambda h, key=key: h['memory'][key])
    m = r['memory']
    lines.append(f"  trainable {m['num_trainable_params']:,} of "
                 f"{m['num_unet_params']:,} U-Net parameters")
    return '\n'.join(lines)


def benchmark(args) -> dict:
    """Both halves, each in a fresh process; the result (see the tool).

    Args:
        args: The tool's options (``config``, ``unet``, ``random_weights``,
            ``iters``, ``warmup``, ``batch``, ``size``, ``threads``,
            ``no_ema``, ``work_dir``, ``out``).

    Returns:
        dict: Medians, ratio, host and both halves' records.
    """
    os.makedirs(args.work_dir, exist_ok=True)
    options = osp.join(args.work_dir, 'bench_args.json')
    atomic_write_json(options, vars(args), indent=2)
    # the halves import the same mmdiff as this process
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [osp.dirname(osp.dirname(mmdiff.__file__))] +
        [p for p in [os.environ.get('PYTHONPATH')] if p]))
    halves = {}
    for half in HALVES:  # the plain half reads the runner's batches
        subprocess.run([sys.executable, '-m', __name__, options, half],
                       check=True, env=env)
        with open(osp.join(args.work_dir, f'bench_{half}.json')) as f:
            halves[half] = json.load(f)
    ran, pl = halves['runner']['median_s'], halves['plain']['median_s']
    result = dict(runner_s=ran, plain_s=pl, ratio=ran / pl,
                  threads=halves['runner']['threads'], batch=args.batch,
                  size=args.size, unet=label(args), iters=args.iters,
                  warmup=args.warmup, config=osp.abspath(args.config),
                  random_weights=args.random_weights, host=host(),
                  halves=halves)
    result['host']['threads'] = result['threads']
    if args.out:
        atomic_write_json(args.out, result, indent=2)
    return result


def _main_half(options: str, half: str) -> None:
    with open(options) as f:
        args = argparse.Namespace(**json.load(f))
    if args.threads:
        torch.set_num_threads(args.threads)
    run_half(args, half)


if __name__ == '__main__':
    _main_half(*sys.argv[1:])
