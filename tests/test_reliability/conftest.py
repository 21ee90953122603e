"""Shared by the reliability tests: run a probe driver (a script that runs
the tools in-process, one import of torch/mmseg/mmdet for all its probes)
and collect its ``PROBE {json}`` lines."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

HERE = osp.dirname(osp.abspath(__file__))


@pytest.fixture(scope='session')
def run_probe_driver():
    """``run_probe_driver(script, work) -> {probe: record}``: runs
    ``tests/test_reliability/<script> WORK`` (one thread) and asserts it
    finished."""

    def run(script: str, work: str) -> dict:
        env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
        env.pop('LOCAL_RANK', None)
        proc = subprocess.run(
            [sys.executable, osp.join(HERE, script), work], env=env,
            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=900)
        results = {}
        for line in proc.stdout.splitlines():
            if line.startswith('PROBE '):
                rec = json.loads(line[len('PROBE '):])
                results[rec['probe']] = rec
        assert proc.returncode == 0 and results, proc.stdout[-4000:]
        return results

    return run


@pytest.fixture(scope='session')
def expect_probe():
    """``expect_probe(rec, outcome, pattern)``: the probe ended in
    ``outcome`` (an exception type or 'ok') with a message matching
    ``pattern``, and no code from a pickle ran."""

    def check(rec: dict, outcome: str, pattern: str) -> None:
        assert rec['outcome'] == outcome, rec
        assert re.search(pattern, rec['message'], re.S), rec['message']
        assert not rec['marker'], 'code from a pickle ran'

    return check
