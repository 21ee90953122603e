"""The pretrainer's training step under mmengine's Runner vs a plain loop.

    python tools/analysis_tools/benchmark_pretrainer.py [--iters 20]
        [--warmup 3] [--batch 8] [--size 128] [--unet tiny|sd15]

One process, same U-Net (same initial weights), same batches, same dtype
(fp32), same optimizer (AdamW, the demo config's lr / weight decay / grad
clip): first ``Runner.train()`` on the demo pretraining config (its hooks
but the demo VAE, EMA and export hooks, which a plain loop would not run
either), timing each iteration from ``before_train_iter`` to the end of
``after_train_iter`` (data loading excluded); then a plain PyTorch +
diffusers loop (normalise, VAE encode, DDPM noise, U-Net, MSE with min-SNR,
backward, clip, step) on the batches the runner got. Prints the median step
time of each and their ratio (goal: runner / plain <= 1.0).
"""
import argparse
import copy
import os.path as osp
import statistics
import sys
import tempfile
import time

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if osp.isfile(osp.join(_ROOT, 'mmdiff', '__init__.py')):
    sys.path.insert(0, _ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402

CONFIG = osp.join(_ROOT, 'configs', 'pretrain',
                  'diffusion-pretrain_tiny_demo-unlabelled.py')


class _StepTimer(Hook):
    """Records each iteration's time (data loading excluded) and batch."""
    priority = 'LOWEST'

    def __init__(self) -> None:
        self.times, self.batches, self._start = [], [], None

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.batches.append(copy.deepcopy(data_batch))
        self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.times.append(time.perf_counter() - self._start)


def plain_loop(model, batches, lr, weight_decay, max_norm) -> list:
    """The same step without mmengine: returns per-step seconds."""
    from diffusers.training_utils import compute_snr
    unet, vae, sched = model.unet, model.vae, model.scheduler
    params = [p for p in unet.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    mean = torch.tensor([127.5] * 3).view(1, 3, 1, 1)
    times = []
    for batch in batches:
        start = time.perf_counter()
        x = torch.stack(batch['inputs'])[:, [2, 1, 0]].float()  # BGR->RGB
        x = (x - mean) / mean
        with torch.no_grad():
            lat = vae.encode(x).latent_dist.sample() * \
                vae.config.scaling_factor
        noise = torch.randn_like(lat)
        t = torch.randint(0, sched.config.num_train_timesteps,
                          (lat.shape[0], )).long()
        noisy = sched.add_noise(lat, noise, t)
        cond = torch.zeros(lat.shape[0], 1, unet.config.cross_attention_dim)
        pred = unet(noisy, t, encoder_hidden_states=cond).sample
        mse = F.mse_loss(pred, noise, reduction='none').mean(dim=(1, 2, 3))
        snr = compute_snr(sched, t)
        loss = (mse * torch.clamp(snr, max=model.snr_gamma) / snr).mean()
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optim.step()
        times.append(time.perf_counter() - start)
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--iters', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--unet', choices=['tiny', 'sd15'], default='tiny')
    p.add_argument('--work-dir', default=None)
    args = p.parse_args(argv)
    from mmengine.runner import Runner
    cfg = Config.fromfile(CONFIG)
    if args.unet == 'sd15':
        from mmdiff.models.diffusion.presets import SD_VAE, real_unet_cfg
        cfg.model.update(
            unet_cfg=real_unet_cfg('stable-diffusion-v1-5/'
                                   'stable-diffusion-v1-5'), vae_cfg=SD_VAE)
    cfg.work_dir = args.work_dir or tempfile.mkdtemp(prefix='bench_pre-')
    ds = cfg.train_dataloader.dataset
    ds.update(num_train=max(args.batch * 2, 16), size=args.size,
              data_root=osp.join(cfg.work_dir, 'data', 'seg'))
    ds.pipeline[1]['scale'] = args.size
    ds.pipeline[2]['crop_size'] = (args.size, args.size)
    cfg.train_dataloader.batch_size = args.batch
    cfg.model.vae_weights = None  # a random VAE costs the same
    cfg.custom_hooks = []  # no demo VAE, EMA, export: the plain loop has none
    cfg.param_scheduler = None  # a constant lr, as the plain loop
    cfg.default_hooks.checkpoint.interval = 10**9
    cfg.default_hooks.checkpoint.save_last = False
    cfg.train_cfg.max_iters = args.warmup + args.iters
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    timer = _StepTimer()
    runner.register_hook(timer)
    model = runner.model
    init = copy.deepcopy(model.state_dict())
    runner.train()
    model.load_state_dict(init)  # the plain loop starts where runner did
    opt = cfg.optim_wrapper.optimizer
    plain = plain_loop(model, timer.batches, opt.lr, opt.weight_decay,
                       cfg.optim_wrapper.clip_grad.max_norm)
    ran = statistics.median(timer.times[args.warmup:])
    pl = statistics.median(plain[args.warmup:])
    result = dict(runner_s=ran, plain_s=pl, ratio=ran / pl,
                  threads=torch.get_num_threads(), batch=args.batch,
                  size=args.size, unet=args.unet, iters=args.iters)
    print(f'{args.unet} U-Net, batch {args.batch} x {args.size} px, fp32, '
          f'AdamW, {torch.get_num_threads()} threads, median of '
          f'{args.iters} steps after {args.warmup} warm-up:\n'
          f'  mmengine Runner step   {ran * 1000:8.1f} ms\n'
          f'  plain PyTorch loop     {pl * 1000:8.1f} ms\n'
          f'  runner / plain         {ran / pl:8.3f}')
    return result


if __name__ == '__main__':
    main()
