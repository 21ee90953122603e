"""The parent of ``tools/analysis_tools/benchmark_backbone.py``: one fresh
process per case (``<impl>:<mode>``), then the summaries and the report."""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Callable

import torch

from .measure import matmul_rate
from .report import (DIT_PAIR, EXTRA_IMPLS, IMPLS, P2_PAIR, machine,
                     markdown, summarise)

RESULT_TAG = 'BENCH_RESULT '
MODES = ('infer', 'train')


def run_child(cmd: list, timeout: float) -> dict:
    """Run one case's process; its result line (``RESULT_TAG`` + JSON)."""
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f'exit {proc.returncode}: ' + ' | '.join(tail))


def run_cases(args, child_cmd: Callable[[list], list]) -> dict:
    """Each case of ``args.cases`` in a fresh process; the report.

    Args:
        args: The tool's options (``cases``, ``work_dir``, ``device``,
            ``attn_maps``, ``check``, ``timeout``, ...).
        child_cmd (callable): ``extra -> command`` of one case's process
            (the tool itself with ``--child <case>`` in ``extra``); it
            prints ``RESULT_TAG`` + the case's JSON.

    Returns:
        dict: ``meta``, ``cases``, ``errors``, summaries and ``markdown``.
    """
    cases = [c.strip() for c in args.cases.split(',') if c.strip()]
    for case in cases:
        impl, _, mode = case.partition(':')
        if impl not in IMPLS + EXTRA_IMPLS or mode not in MODES:
            raise SystemExit(f'Unknown case {case!r}: use <impl>:<mode> with '
                             f'impl in {IMPLS + EXTRA_IMPLS} and mode in '
                             f'{MODES}.')
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
        if mode == 'infer' and args.check and impl in IMPLS:
            features[impl] = osp.join(args.work_dir, f'features_{impl}.pt')
            extra += ['--save-features', features[impl]]
        print(f'[bench] {case} ...', file=sys.stderr)
        start = time.perf_counter()
        try:
            results[case] = run_child(child_cmd(extra), args.timeout)
            results[case]['process_wall_s'] = time.perf_counter() - start
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            errors[case] = str(e)
    rate = max(rate, matmul_rate(args.device))
    report = dict(
        meta=dict(machine=machine(), args=vars(args), matmul_flops=rate,
                  threads=torch.get_num_threads()),
        cases=results, errors=errors)
    if len(features) == 2 and all(osp.isfile(p) for p in features.values()):
        a, b = (torch.load(features[i], weights_only=True) for i in IMPLS)
        report['max_abs_diff'] = [
            float((x - y).abs().max()) if x.shape == y.shape else None
            for x, y in zip(a, b)
        ]
    report['summary'] = summarise(results, rate)
    if any(case.startswith(P2_PAIR[0] + ':') for case in results):
        report['p2_summary'] = summarise(results, rate, pair=P2_PAIR)
    if any(case.startswith(DIT_PAIR[0] + ':') for case in results):
        report['dit_summary'] = summarise(results, rate, pair=DIT_PAIR)
    report['markdown'] = markdown(report)
    return report
