"""Measuring one case inside its own process: latency, FLOPs, peak memory.

Peak memory on CPU is the RSS high-water mark of the process
(``ru_maxrss``/``VmHWM``), reset after the model is built (Linux
``/proc/self/clear_refs``), so building/loading does not count; on CUDA it is
``torch.cuda.max_memory_allocated``. Gradients stay allocated between steps
(``zero_grad(set_to_none=False)``), so activations = peak - memory after
build (parameters, buffers, runtime) - gradients - optimizer state, all three
sizes computed exactly from the tensors.
"""
import time
from contextlib import nullcontext

import torch

from .builders import BUILDERS, OPTIMIZERS, unet_fn, with_fpn
from .weights import prepare_weights


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


def tensor_bytes(tensors) -> int:
    """Bytes of distinct tensors (shared storage counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def timed(fn, warmup: int, repeats: int, sync) -> list:
    """Seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
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
    model = BUILDERS[impl](args, paths)
    if args.neck:
        model = with_fpn(model)
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
        param_bytes=tensor_bytes(params),
        buffer_bytes=tensor_bytes(model.buffers()),
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
                outs = forward(inputs)
            result['levels'] = [list(out.shape) for out in outs]
            return outs

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
            result['grad_bytes'] = tensor_bytes(
                p.grad for p in params if p.grad is not None)
            wrapper.step()
            wrapper.zero_grad(set_to_none=False)

    memory = PeakMemory(device)
    import gc
    gc.collect()
    memory.reset()
    result['base_bytes'] = memory.current()
    result['times'] = timed(step, args.warmup, args.repeats, sync)
    # RSS may dip below the reading taken at reset: a peak is never lower.
    result['peak_bytes'] = max(memory.peak(), result['base_bytes'])
    result['peak_includes_build'] = memory.build_included
    if mode == 'train':
        state = wrapper.optimizer.state
        result['optim_state_bytes'] = tensor_bytes(
            t for s in state.values() for t in s.values())
        result['activation_bytes'] = (
            result['peak_bytes'] - result['base_bytes'] -
            result['grad_bytes'] - result['optim_state_bytes'])
    else:
        result['activation_bytes'] = result['peak_bytes'] - \
            result['base_bytes']
        result['unet_times'] = timed(unet_step, args.warmup, args.repeats,
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
    times = timed(lambda: a @ b, 1, repeats, sync)
    return 2 * size**3 / min(times)
