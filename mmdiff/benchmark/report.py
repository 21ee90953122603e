"""The benchmark report: per-metric min/median/max of two implementations
(mmdiff vs mmseg; or mmdiff with its VAE levels vs without), their ratios,
and the markdown tables the tool prints."""
import os
import platform
import statistics
import subprocess

import torch

IMPLS = ('mmdiff', 'mmseg')
#: The cases compared with mmdiff itself: ``mmdiff_p2`` is mmdiff's VPD with
#: ``vae_taps`` (finer levels from the VAE encoder).
#: ``dit`` is a DiTBackbone at SD3.5-medium's shapes, compared with
#: mmdiff's VPD (the SD1.5-shaped U-Net) in the same run.
EXTRA_IMPLS = ('mmdiff_p2', 'dit')
P2_PAIR = ('mmdiff_p2', 'mmdiff')
DIT_PAIR = ('dit', 'mmdiff')
LABELS = dict(mmdiff='mmdiff', mmseg='mmseg VPD',
              mmdiff_p2='mmdiff + vae_taps', dit='DiT (SD3.5-medium)')


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
    ('infer.forward_flops', 'forward GFLOP (VAE enc + U-Net, + FPN with '
     '--neck)', 'GFLOP', 'flops'),
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


def summarise(cases: dict, rate: float, pair=IMPLS) -> dict:
    """Per metric: the values of the two implementations of ``pair``
    (min/median/max) and their ratios, ``pair[0] / pair[1]``."""
    for res in cases.values():
        if 'unet_flops' in res and 'unet_times' in res:
            res['unet_util'] = [res['unet_flops'] / t / rate
                                for t in res['unet_times']]
    rows = []
    for key, label, unit, kind in METRICS:
        mode, field = key.split('.')
        vals = {}
        for impl in pair:
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
        if vals[pair[0]] and vals[pair[1]]:
            # min pairs with min (best of N): the fastest run of one against
            # the fastest of the other, likewise median and max.
            row['ratio'] = {s: _ratio(vals[pair[0]][s], vals[pair[1]][s])
                            for s in ('min', 'median', 'max')}
        else:
            row['ratio'] = None
        rows.append(row)
    ratios = [r['ratio']['median'] for r in rows
              if r['ratio'] and r['ratio']['median'] is not None
              and r['key'] in HEADLINE]
    return dict(rows=rows, pair=list(pair),
                ratio_summary=_stats(ratios) if ratios else None)


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
    """The tables of ``report['summary']`` (and ``report['p2_summary']`` /
    ``report['dit_summary']`` when the ``mmdiff_p2`` / ``dit`` cases ran),
    the rate and the errors."""
    lines = _table(report['summary'])
    if report.get('p2_summary'):
        lines += ['', 'With `vae_taps` vs without (same run):'] + _table(
            report['p2_summary'])
    if report.get('dit_summary'):
        lines += ['', 'DiTBackbone (SD3.5-medium shapes) vs the SD1.5 U-Net '
                  '(same run; "U-Net" rows: the transformer):'] + _table(
                      report['dit_summary'])
    meta = report['meta']
    lines.append(f'fp32 matmul rate measured in this run: '
                 f'{meta["matmul_flops"] / 1e9:.1f} GFLOP/s '
                 f'({meta["threads"]} threads).')
    for name, err in report.get('errors', {}).items():
        lines.append(f'- {name}: not measured ({err})')
    return '\n'.join(lines)


def _table(summary: dict) -> list:
    """One summary's markdown table and headline line."""
    a, b = summary['pair']
    lines = [
        f'| metric | unit | {LABELS[a]} (min / median / max) | '
        f'{LABELS[b]} (min / median / max) | {a} / {b} (min / median / '
        'max) |', '| --- | --- | --- | --- | --- |'
    ]

    def triple(v, kind):
        if v is None:
            return '-'
        if v['min'] == v['max']:
            return _fmt(v['min'], kind)
        return ' / '.join(_fmt(v[s], kind)
                          for s in ('min', 'median', 'max'))

    for row in summary['rows']:
        ratio = '-' if row['ratio'] is None else ' / '.join(
            '-' if row['ratio'][s] is None else f'{row["ratio"][s]:.2f}'
            for s in ('min', 'median', 'max'))
        if row['ratio'] and row['ratio']['min'] is not None \
                and row[a]['min'] == row[a]['max'] \
                and row[b]['min'] == row[b]['max']:
            ratio = f'{row["ratio"]["min"]:.2f}'
        lines.append(f'| {row["metric"]} | {row["unit"]} | '
                     f'{triple(row[a], row["kind"])} | '
                     f'{triple(row[b], row["kind"])} | {ratio} |')
    summ = summary['ratio_summary']
    if summ:
        lines.append(
            f'\nHeadline ratios (latencies, peaks, train activations; '
            f'medians), {a} / {b}: min '
            f'{summ["min"]:.2f}, median {summ["median"]:.2f}, max '
            f'{summ["max"]:.2f}.')
    return lines


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
