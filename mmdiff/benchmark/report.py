"""The benchmark report: per-metric min/median/max of both implementations,
their ratios, and the markdown table the tool prints."""
import os
import platform
import statistics
import subprocess

import torch

IMPLS = ('mmdiff', 'mmseg')


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


def machine() -> dict:
    """CPU model (lscpu), cores, Python/torch versions, GPU if any."""
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
