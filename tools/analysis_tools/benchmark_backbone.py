"""Benchmark mmdiff's VPD against mmseg 1.2's VPD on the same weights.

    python tools/analysis_tools/benchmark_backbone.py \
        --unet-config sd15 --input-size 512 --batch 1 --json bench.json

One invocation measures, for each case ``<impl>:<mode>`` (impl: mmdiff |
mmseg, mode: infer | train) in a FRESH subprocess, after warm-up and over
several repeats:

* ``infer``: backbone forward latency under ``no_grad`` (VAE encode + U-Net
  up to the last tap), the U-Net alone, its FLOPs (``FlopCounterMode``) and
  the achieved FLOP/s as a fraction of this machine's fp32 matmul rate,
  measured in the same run; peak memory.
* ``train``: one full training step (forward, backward, optimizer step via
  an mmengine optim wrapper) and its peak memory, split into parameters,
  gradients, optimizer state and activations.

Same weights: a seeded SD-shaped ldm (CompVis) U-Net + VAE is written as an
SD single-file checkpoint and converted to diffusers with diffusers' own
helpers (``convert_ldm_unet_checkpoint``/``convert_ldm_vae_checkpoint``);
mmdiff loads the diffusers folder through its normal ``pretrained`` path,
mmseg's real ``VPD`` class builds ldm's ``UNetModel`` from the ldm file.
Same class embeddings, text adapter and input images for both.

Peak memory on CPU is the RSS high-water mark of the case's own process
(``ru_maxrss``/``VmHWM``), reset after the model is built (Linux
``/proc/self/clear_refs``), so building/loading does not count; on CUDA it is
``torch.cuda.max_memory_allocated``. Gradients stay allocated between steps
(``zero_grad(set_to_none=False)``), so activations = peak - memory after
build (parameters, buffers, runtime) - gradients - optimizer state, all three
sizes computed exactly from the tensors.

mmseg's ``VPD`` builds ``diffusion_cfg`` with ldm's ``instantiate_from_config``.
ldm's ``LatentDiffusion`` needs pytorch_lightning AND torchvision (``ddpm.py``
imports ``torchvision.utils.make_grid``), so ``diffusion_cfg.target`` here is
:class:`LdmStableDiffusion`: ldm's own ``UNetModel``, ``Encoder``/``Decoder``
and ``DiagonalGaussianDistribution`` in the attribute layout mmseg reads
(``.model.diffusion_model``, ``.first_stage_model.encode(x).mode()``).
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext

import torch
from torch import nn

RESULT_TAG = 'BENCH_RESULT '
IMPLS = ('mmdiff', 'mmseg')
MODES = ('infer', 'train')

# ldm (CompVis) configs: SD v1.5 and a tiny SD1-shaped one for tests.
LDM_CONFIGS = {
    'sd15': dict(
        unet=dict(image_size=64, in_channels=4, out_channels=4,
                  model_channels=320, attention_resolutions=[4, 2, 1],
                  num_res_blocks=2, channel_mult=[1, 2, 4, 4], num_heads=8,
                  use_spatial_transformer=True, transformer_depth=1,
                  context_dim=768, legacy=False),
        vae=dict(double_z=True, z_channels=4, resolution=256, in_channels=3,
                 out_ch=3, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2,
                 attn_resolutions=[], dropout=0.0)),
    'tiny': dict(
        unet=dict(image_size=8, in_channels=4, out_channels=4,
                  model_channels=32, attention_resolutions=[4, 2, 1],
                  num_res_blocks=2, channel_mult=[1, 2, 2, 2], num_heads=4,
                  use_spatial_transformer=True, transformer_depth=1,
                  context_dim=32, legacy=False),
        vae=dict(double_z=True, z_channels=4, resolution=64, in_channels=3,
                 out_ch=3, ch=32, ch_mult=[1, 1, 2, 2], num_res_blocks=1,
                 attn_resolutions=[], dropout=0.0)),
}
OPTIMIZERS = {
    'sgd': dict(type='SGD', lr=1e-4, momentum=0.9),
    'adamw': dict(type='AdamW', lr=1e-4, weight_decay=1e-3),
    # transformers' Adafactor through mmengine's optimizer registry.
    'adafactor': dict(type='Adafactor', lr=1e-4, scale_parameter=False,
                      relative_step=False, warmup_init=False),
    'torch-adafactor': dict(type='TorchAdafactor', lr=1e-2),
}


# ----------------------------------------------------------------------
# The ldm side (what mmseg's VPD instantiates)
# ----------------------------------------------------------------------
class LdmAutoencoderKL(nn.Module):
    """ldm ``AutoencoderKL`` (same modules, keys and ``encode``) without
    pytorch_lightning; the decoder is built, as mmseg's VPD keeps it."""

    def __init__(self, ddconfig: dict, embed_dim: int = 4) -> None:
        super().__init__()
        from ldm.modules.diffusionmodules.model import Decoder, Encoder
        self.encoder = Encoder(**ddconfig)
        self.decoder = Decoder(**ddconfig)
        self.quant_conv = nn.Conv2d(2 * ddconfig['z_channels'],
                                    2 * embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig['z_channels'],
                                         1)

    def encode(self, x):
        """ldm ``AutoencoderKL.encode``: the posterior distribution."""
        from ldm.modules.distributions.distributions import \
            DiagonalGaussianDistribution
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))


class LdmStableDiffusion(nn.Module):
    """``diffusion_cfg.target`` for mmseg's VPD: ldm U-Net + VAE.

    Args:
        unet_config (dict): ldm ``UNetModel`` kwargs.
        ddconfig (dict): ldm VAE ``ddconfig``.
        embed_dim (int): VAE latent channels. Defaults to 4.
        ckpt (str, optional): SD single-file ``.safetensors``; every
            ``model.diffusion_model.*``/``first_stage_model.*`` key must
            match (strict). Defaults to None.
    """

    def __init__(self, unet_config: dict, ddconfig: dict, embed_dim: int = 4,
                 ckpt: str = None) -> None:
        super().__init__()
        from ldm.modules.diffusionmodules.openaimodel import UNetModel
        self.model = nn.Module()  # ldm DiffusionWrapper layout
        self.model.diffusion_model = UNetModel(**unet_config)
        self.first_stage_model = LdmAutoencoderKL(ddconfig, embed_dim)
        if ckpt is not None:
            from safetensors.torch import load_file
            state = load_file(ckpt)
            for prefix, module in (('model.diffusion_model.',
                                    self.model.diffusion_model),
                                   ('first_stage_model.',
                                    self.first_stage_model)):
                module.load_state_dict(
                    {k[len(prefix):]: v
                     for k, v in state.items() if k.startswith(prefix)},
                    strict=True)
            del state


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Fill the parameters ldm zero-inits so no layer is an identity."""
    with torch.no_grad():
        for param in module.parameters():
            if not param.any():
                param.copy_(torch.randn(param.shape, generator=generator) *
                            0.05)


def prepare_weights(cfg_name: str, num_tokens: int, seed: int,
                    work_dir: str) -> dict:
    """Write the shared weights once; return their paths.

    Files: ``sd.safetensors`` (SD single-file layout) and ``sd.yaml``;
    ``diffusers/{unet,vae}`` converted by diffusers' helpers;
    ``class_embeddings.pth`` (K, D); ``adapter.pth`` (text adapter + gamma).
    """
    paths = dict(
        ldm=osp.join(work_dir, 'sd.safetensors'),
        yaml=osp.join(work_dir, 'sd.yaml'),
        diffusers=osp.join(work_dir, 'diffusers'),
        embeddings=osp.join(work_dir, f'class_embeddings_{num_tokens}.pth'),
        adapter=osp.join(work_dir, 'adapter.pth'))
    done = osp.join(work_dir, 'DONE')
    cfg = LDM_CONFIGS[cfg_name]
    dim = cfg['unet']['context_dim']
    gen = torch.Generator().manual_seed(seed)
    if not osp.isfile(paths['embeddings']):
        torch.save(torch.randn(num_tokens, dim, generator=gen),
                   paths['embeddings'])
    if osp.isfile(done):
        return paths
    import yaml
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import (
        convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm)
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    sd = LdmStableDiffusion(cfg['unet'], cfg['vae'])
    _randomise(sd, gen)
    state = {k: v.contiguous() for k, v in sd.state_dict().items()}
    del sd
    save_file(state, paths['ldm'])
    original = dict(model=dict(params=dict(
        scale_factor=0.18215,
        unet_config=dict(
            target='ldm.modules.diffusionmodules.openaimodel.UNetModel',
            params=cfg['unet']),
        first_stage_config=dict(
            target='ldm.models.autoencoder.AutoencoderKL',
            params=dict(embed_dim=4, ddconfig=cfg['vae'])))))
    with open(paths['yaml'], 'w') as f:
        yaml.safe_dump(original, f)
    unet_config = create_unet_diffusers_config_from_ldm(original, state)
    unet = UNet2DConditionModel(**unet_config)
    unet.load_state_dict(convert_ldm_unet_checkpoint(state, unet_config),
                         strict=True)
    unet.save_pretrained(osp.join(paths['diffusers'], 'unet'))
    del unet
    vae_config = create_vae_diffusers_config_from_ldm(original, state)
    vae = AutoencoderKL(**vae_config)
    vae.load_state_dict(convert_ldm_vae_checkpoint(state, vae_config),
                        strict=True)
    vae.save_pretrained(osp.join(paths['diffusers'], 'vae'))
    del vae, state
    adapter = nn.Sequential(nn.Linear(dim, dim), nn.GELU(),
                            nn.Linear(dim, dim))
    torch.save(dict(fc=adapter.state_dict(),
                    gamma=torch.full((dim, ), 1e-4)), paths['adapter'])
    open(done, 'w').close()
    return paths


# ----------------------------------------------------------------------
# Building both backbones
# ----------------------------------------------------------------------
def build_mmdiff(args, paths: dict) -> nn.Module:
    from mmdiff.models.backbones import VPD
    lora = dict(rank=args.lora_rank) if args.lora_rank > 0 else None
    model = VPD(pretrained=paths['diffusers'], local_files_only=True,
                class_embeddings=paths['embeddings'],
                use_attn=args.attn_maps, grad_checkpointing=args.grad_ckpt,
                freeze_unet=args.freeze_unet, lora=lora)
    model.init_weights()
    adapter = torch.load(paths['adapter'], weights_only=True)
    model.text_adapter.fc.load_state_dict(adapter['fc'])
    model.text_adapter.gamma.data.copy_(adapter['gamma'])
    if args.vae_slicing:
        model.vae.enable_slicing()
    return model


def build_mmseg(args, paths: dict) -> nn.Module:
    from mmseg.models.backbones.vpd import VPD
    cfg = LDM_CONFIGS[args.unet_config]
    unet_config = dict(cfg['unet'], use_checkpoint=args.grad_ckpt)
    model = VPD(
        diffusion_cfg=dict(
            target=f'{LdmStableDiffusion.__module__}.LdmStableDiffusion',
            params=dict(unet_config=unet_config, ddconfig=cfg['vae'],
                        embed_dim=4, ckpt=paths['ldm'])),
        class_embed_path=paths['embeddings'],
        unet_cfg=dict(use_attn=args.attn_maps,
                      base_size=args.input_size))
    adapter = torch.load(paths['adapter'], weights_only=True)
    model.text_adapter.fc.load_state_dict(adapter['fc'])
    model.gamma.data.copy_(adapter['gamma'])
    if args.freeze_unet:
        model.unet.requires_grad_(False)
    return model


def unet_fn(impl: str, model: nn.Module, inputs: torch.Tensor):
    """A closure running only the U-Net on precomputed latents/context."""
    with torch.no_grad():
        if impl == 'mmdiff':
            latents = model.encode(inputs)
            cond = model.condition(inputs.shape[0]).to(latents.device)
            return lambda: model._run_unet(latents, cond)
        latents = model.encoder_vq.encode(inputs).mode()
        ctx = model.text_adapter(model.class_embeddings, model.gamma)
        ctx = ctx.unsqueeze(0).repeat(inputs.shape[0], 1, 1)
        t = torch.ones((inputs.shape[0], ), device=inputs.device).long()
        return lambda: model.unet(latents, t, context=ctx)


# ----------------------------------------------------------------------
# Measuring (inside the case's own process)
# ----------------------------------------------------------------------
def _rss_kib(field: str = 'VmRSS') -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


class PeakMemory:
    """Peak bytes since :meth:`reset`: CUDA allocator stats or RSS HWM."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == 'cuda'
        self.build_included = False

    def current(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.memory_allocated()
        return _rss_kib() * 1024

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:  # Linux: reset the RSS high-water mark to the current RSS
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')
        except OSError:
            self.build_included = True

    def peak(self) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def _timed(fn, warmup: int, repeats: int, sync) -> list:
    for _ in range(warmup):
        fn()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def count_cpu_sdpa() -> None:
    """Teach torch's flop counter the CPU flash-attention kernel.

    ``FlopCounterMode`` (torch 2.13) has formulas for the CUDA SDPA kernels
    but not for ``_scaled_dot_product_flash_attention_for_cpu``, so SDPA on
    CPU would count 0 FLOPs while ldm's explicit einsum attention counts in
    full. The same formulas (2 matmuls forward, 4 backward) apply.
    """
    from torch.utils import flop_counter as fc
    pairs = (('_scaled_dot_product_flash_attention_for_cpu', fc.sdpa_flop),
             ('_scaled_dot_product_flash_attention_for_cpu_backward',
              fc.sdpa_backward_flop))
    for name, formula in pairs:
        op = getattr(torch.ops.aten, name, None)
        if op is not None and op not in fc.flop_registry:
            fc.register_flop_formula(op, get_raw=True)(formula)


def run_case(args, impl: str, mode: str) -> dict:
    """Build one backbone and measure one mode; return a result dict."""
    device = torch.device(args.device)
    paths = prepare_weights(args.unet_config, args.num_tokens, args.seed,
                            args.work_dir)
    model = (build_mmdiff if impl == 'mmdiff' else build_mmseg)(args, paths)
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(args.seed + 1)
    inputs = (torch.rand(args.batch, 3, args.input_size, args.input_size,
                         generator=gen) * 2 - 1).to(device)
    if args.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    dtype = dict(fp32=None, bf16=torch.bfloat16, fp16=torch.float16)[
        args.dtype]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) \
        if dtype is not None else nullcontext
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: 0)
    forward = torch.compile(model) if args.compile else model
    params = list(model.parameters())
    result = dict(
        impl=impl, mode=mode,
        param_bytes=_tensor_bytes(params),
        buffer_bytes=_tensor_bytes(model.buffers()),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        threads=torch.get_num_threads())

    if mode == 'infer':
        model.eval()
        if args.save_features:
            with torch.no_grad(), autocast():
                outs = forward(inputs)
            torch.save([o.float().cpu() for o in outs], args.save_features)
            del outs
        run_unet = unet_fn(impl, model, inputs)

        def step():
            with torch.no_grad(), autocast():
                return forward(inputs)

        def unet_step():
            with torch.no_grad(), autocast():
                return run_unet()
    else:
        from mmengine.optim import build_optim_wrapper
        model.train()
        wrapper = build_optim_wrapper(
            model, dict(type='OptimWrapper',
                        optimizer=dict(OPTIMIZERS[args.optimizer])))

        def step():
            with autocast():
                outs = forward(inputs)
            loss = sum(o.float().mean() for o in outs)
            wrapper.backward(loss)
            result['grad_bytes'] = _tensor_bytes(
                p.grad for p in params if p.grad is not None)
            wrapper.step()
            wrapper.zero_grad(set_to_none=False)

    memory = PeakMemory(device)
    import gc
    gc.collect()
    memory.reset()
    result['base_bytes'] = memory.current()
    result['times'] = _timed(step, args.warmup, args.repeats, sync)
    # RSS may dip below the reading taken at reset: a peak is never lower.
    result['peak_bytes'] = max(memory.peak(), result['base_bytes'])
    result['peak_includes_build'] = memory.build_included
    if mode == 'train':
        state = wrapper.optimizer.state
        result['optim_state_bytes'] = _tensor_bytes(
            t for s in state.values() for t in s.values())
        result['activation_bytes'] = (
            result['peak_bytes'] - result['base_bytes'] -
            result['grad_bytes'] - result['optim_state_bytes'])
    else:
        result['activation_bytes'] = result['peak_bytes'] - \
            result['base_bytes']
        result['unet_times'] = _timed(unet_step, args.warmup, args.repeats,
                                      sync)
        if not args.no_flops:
            from torch.utils.flop_counter import FlopCounterMode
            count_cpu_sdpa()
            with FlopCounterMode(display=False) as counter:
                unet_step()
            result['unet_flops'] = counter.get_total_flops()
            with FlopCounterMode(display=False) as counter:
                step()
            result['forward_flops'] = counter.get_total_flops()
    return result


def matmul_rate(device: str, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matmul FLOP/s over ``repeats`` (n x n @ n x n)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    sync = torch.cuda.synchronize if device.startswith('cuda') else \
        (lambda: 0)
    times = _timed(lambda: a @ b, 1, repeats, sync)
    return 2 * size**3 / min(times)


# ----------------------------------------------------------------------
# Orchestration and report (parent process)
# ----------------------------------------------------------------------
def _stats(values: list) -> dict:
    return dict(min=min(values), median=statistics.median(values),
                max=max(values))


def _ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


METRICS = [  # (key, label, unit, kind)
    ('infer.times', 'forward latency', 's', 'time'),
    ('infer.unet_times', 'U-Net forward latency', 's', 'time'),
    ('infer.unet_flops', 'U-Net GFLOP (counted)', 'GFLOP', 'flops'),
    ('infer.unet_util', 'U-Net FLOP/s / fp32 matmul rate', '', 'util'),
    ('infer.forward_flops', 'backbone GFLOP (VAE enc + U-Net)', 'GFLOP',
     'flops'),
    ('infer.peak_bytes', 'inference peak memory', 'GB', 'mem'),
    ('infer.activation_bytes', 'inference peak - after build', 'GB', 'mem'),
    ('train.times', 'train step latency', 's', 'time'),
    ('train.peak_bytes', 'train peak memory (total)', 'GB', 'mem'),
    ('train.base_bytes', 'after build (params, buffers, runtime)', 'GB',
     'mem'),
    ('train.grad_bytes', 'gradients', 'GB', 'mem'),
    ('train.optim_state_bytes', 'optimizer state', 'GB', 'mem'),
    ('train.activation_bytes', 'train activations', 'GB', 'mem'),
]


# Metrics whose ratios enter the min/median/max summary.
HEADLINE = ('infer.times', 'infer.unet_times', 'infer.peak_bytes',
            'train.times', 'train.peak_bytes', 'train.activation_bytes')


def summarise(cases: dict, rate: float) -> dict:
    """Per metric: mmdiff/mmseg values (min/median/max) and ratios."""
    for res in cases.values():
        if 'unet_flops' in res and 'unet_times' in res:
            res['unet_util'] = [res['unet_flops'] / t / rate
                                for t in res['unet_times']]
    rows = []
    for key, label, unit, kind in METRICS:
        mode, field = key.split('.')
        vals = {}
        for impl in IMPLS:
            value = cases.get(f'{impl}:{mode}', {}).get(field)
            if value is None:
                vals[impl] = None
            elif isinstance(value, list):
                vals[impl] = _stats(value)
            else:
                vals[impl] = _stats([value])
        if all(v is None for v in vals.values()):
            continue
        row = dict(metric=label, key=key, unit=unit, kind=kind, **vals)
        if vals['mmdiff'] and vals['mmseg']:
            # min pairs with min (best of N): the fastest run of one against
            # the fastest of the other, likewise median and max.
            row['ratio'] = {s: _ratio(vals['mmdiff'][s], vals['mmseg'][s])
                            for s in ('min', 'median', 'max')}
        else:
            row['ratio'] = None
        rows.append(row)
    ratios = [r['ratio']['median'] for r in rows
              if r['ratio'] and r['ratio']['median'] is not None
              and r['key'] in HEADLINE]
    return dict(rows=rows, ratio_summary=_stats(ratios) if ratios else None)


def _fmt(value, kind: str) -> str:
    if value is None:
        return '-'
    if kind == 'mem':
        return f'{value / 1e9:.2f}'
    if kind == 'flops':
        return f'{value / 1e9:.1f}'
    if kind == 'util':
        return f'{100 * value:.0f}%'
    return f'{value:.3f}'


def markdown(report: dict) -> str:
    lines = [
        '| metric | unit | mmdiff (min / median / max) | '
        'mmseg VPD (min / median / max) | mmdiff / mmseg (min / median / '
        'max) |', '| --- | --- | --- | --- | --- |'
    ]

    def triple(v, kind):
        if v is None:
            return '-'
        if v['min'] == v['max']:
            return _fmt(v['min'], kind)
        return ' / '.join(_fmt(v[s], kind)
                          for s in ('min', 'median', 'max'))

    for row in report['summary']['rows']:
        ratio = '-' if row['ratio'] is None else ' / '.join(
            '-' if row['ratio'][s] is None else f'{row["ratio"][s]:.2f}'
            for s in ('min', 'median', 'max'))
        if row['ratio'] and row['ratio']['min'] is not None \
                and row['mmdiff']['min'] == row['mmdiff']['max'] \
                and row['mmseg']['min'] == row['mmseg']['max']:
            ratio = f'{row["ratio"]["min"]:.2f}'
        lines.append(f'| {row["metric"]} | {row["unit"]} | '
                     f'{triple(row["mmdiff"], row["kind"])} | '
                     f'{triple(row["mmseg"], row["kind"])} | {ratio} |')
    summ = report['summary']['ratio_summary']
    if summ:
        lines.append(
            f'\nHeadline ratios (latencies, peaks, train activations; '
            f'medians), mmdiff / mmseg: min '
            f'{summ["min"]:.2f}, median {summ["median"]:.2f}, max '
            f'{summ["max"]:.2f}.')
    meta = report['meta']
    lines.append(f'fp32 matmul rate measured in this run: '
                 f'{meta["matmul_flops"] / 1e9:.1f} GFLOP/s '
                 f'({meta["threads"]} threads).')
    for name, err in report.get('errors', {}).items():
        lines.append(f'- {name}: not measured ({err})')
    return '\n'.join(lines)


def _machine() -> dict:
    cpu = platform.processor()
    try:
        out = subprocess.run(['lscpu'], capture_output=True, text=True,
                             check=False).stdout
        for line in out.splitlines():
            if line.startswith('Model name:'):
                cpu = line.split(':', 1)[1].strip()
    except OSError:
        pass
    info = dict(cpu=cpu, cores=os.cpu_count(), python=platform.python_version(),
                torch=torch.__version__)
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    return info


def _child_cmd(argv: list, extra: list) -> list:
    return [sys.executable, osp.abspath(__file__)] + argv + extra


def _run_child(cmd: list, timeout: float) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f'exit {proc.returncode}: ' + ' | '.join(tail))


def main_parent(args, argv: list) -> dict:
    cases = [c.strip() for c in args.cases.split(',') if c.strip()]
    for case in cases:
        impl, _, mode = case.partition(':')
        if impl not in IMPLS or mode not in MODES:
            raise SystemExit(f'Unknown case {case!r}: use <impl>:<mode> with '
                             f'impl in {IMPLS} and mode in {MODES}.')
    os.makedirs(args.work_dir, exist_ok=True)
    # The first case's process writes the shared weights (once per work dir).
    rate = matmul_rate(args.device)
    results, errors, features = {}, {}, {}
    for case in cases:
        impl, _, mode = case.partition(':')
        if impl == 'mmseg' and args.attn_maps:
            errors[case] = ("mmseg 1.2's attention path is broken "
                            '(`context or x` on a tensor); maps are off on '
                            'both in the comparison')
            continue
        extra = ['--child', case]
        if mode == 'infer' and args.check:
            features[impl] = osp.join(args.work_dir, f'features_{impl}.pt')
            extra += ['--save-features', features[impl]]
        print(f'[bench] {case} ...', file=sys.stderr)
        start = time.perf_counter()
        try:
            results[case] = _run_child(_child_cmd(argv, extra), args.timeout)
            results[case]['process_wall_s'] = time.perf_counter() - start
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            errors[case] = str(e)
    rate = max(rate, matmul_rate(args.device))
    report = dict(
        meta=dict(machine=_machine(), args=vars(args), matmul_flops=rate,
                  threads=torch.get_num_threads()),
        cases=results, errors=errors)
    if len(features) == 2 and all(osp.isfile(p) for p in features.values()):
        a, b = (torch.load(features[i], weights_only=True) for i in IMPLS)
        report['max_abs_diff'] = [
            float((x - y).abs().max()) if x.shape == y.shape else None
            for x, y in zip(a, b)
        ]
    report['summary'] = summarise(results, rate)
    report['markdown'] = markdown(report)
    return report


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Latency, FLOP/s and peak memory of mmdiff VPD vs mmseg '
        'VPD on the same weights and inputs (one fresh process per case).')
    parser.add_argument('--unet-config', choices=sorted(LDM_CONFIGS),
                        default='sd15', help='SD-shaped model (random '
                        'weights). Default: sd15')
    parser.add_argument('--input-size', type=int, default=512,
                        help='square input side, a multiple of 64. '
                        'Default: 512')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'],
                        default='fp32', help='fp32, or autocast to bf16/fp16')
    parser.add_argument('--grad-ckpt', action='store_true',
                        help='gradient checkpointing (diffusers / ldm own)')
    parser.add_argument('--attn-maps', action='store_true',
                        help='collect cross-attention maps (mmdiff only: '
                        "mmseg's path is broken)")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--vae-slicing', action='store_true',
                        help='mmdiff: encode a batch one image at a time '
                        '(diffusers AutoencoderKL.enable_slicing)')
    parser.add_argument('--optimizer', choices=sorted(OPTIMIZERS),
                        default='sgd', help='train step optimizer (mmengine '
                        'registry). Default: sgd (momentum 0.9)')
    parser.add_argument('--lora-rank', type=int, default=0,
                        help='mmdiff: freeze the U-Net and train LoRA '
                        'adapters of this rank (peft). Default: 0 (off)')
    parser.add_argument('--freeze-unet', action='store_true')
    parser.add_argument('--num-tokens', type=int, default=150,
                        help='class embeddings K (ADE20K: 150)')
    parser.add_argument('--cases',
                        default='mmdiff:infer,mmseg:infer,mmdiff:train,'
                        'mmseg:train', help='comma list of <impl>:<mode>')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-flops', action='store_true',
                        help='skip FLOP counting (one extra forward)')
    parser.add_argument('--check', action='store_true',
                        help='save both backbones\' features and report '
                        'their max abs difference')
    parser.add_argument('--work-dir', default=None,
                        help='where the shared weights are written (reused '
                        'across runs). Default: a folder under the temp dir')
    parser.add_argument('--timeout', type=float, default=3600,
                        help='seconds per case')
    parser.add_argument('--json', dest='json_out', help='write the report')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--save-features', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.input_size % 64:
        parser.error('--input-size must be a multiple of 64')
    if args.work_dir is None:
        args.work_dir = osp.join(
            tempfile.gettempdir(),
            f'mmdiff_bench_{args.unet_config}_k{args.num_tokens}_'
            f's{args.seed}')
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.child == 'prepare':
        os.makedirs(args.work_dir, exist_ok=True)
        prepare_weights(args.unet_config, args.num_tokens, args.seed,
                        args.work_dir)
        print(RESULT_TAG + json.dumps({}), flush=True)
        return
    if args.child:
        impl, _, mode = args.child.partition(':')
        print(RESULT_TAG + json.dumps(run_case(args, impl, mode)),
              flush=True)
        return
    report = main_parent(args, argv)
    if args.json_out:
        with open(args.json_out, 'w') as f:
            json.dump(report, f, indent=1)
    print(report['markdown'])
    if 'max_abs_diff' in report:
        print('max |mmdiff - mmseg| per output: ' + ', '.join(
            f'{d:.2e}' if d is not None else 'shape differs'
            for d in report['max_abs_diff']))


if __name__ == '__main__':
    main()
