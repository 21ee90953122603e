"""Every ``type`` a config names resolves after importing only what the
config's own ``custom_imports`` lists (plus mmdiff's lazily located
registries), as under the hosts' own tools/train.py, which import nothing
of mmdiff themselves.

Found missing before this test: ``mmdiff.datasets.nyu_scenes`` in the
MetaPrompts NYU config, ``mmdiff.evaluation`` in the GenerativeDepth KITTI
config (both inherit a base whose ``custom_imports`` they replace).
"""
import glob
import json
import os.path as osp
import subprocess
import sys
from collections import defaultdict

from mmengine.config import Config

import mmdiff  # noqa: F401  (mmdiff:: bases)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for pattern in ('configs/**/*.py', 'projects/*/configs/*.py')
    for p in glob.glob(osp.join(ROOT, pattern), recursive=True)
    if '_base_' not in p.split(osp.sep))
# ``type`` names that are not registry entries: mmcv ops by name, and the
# albumentations transforms inside mmseg's ``Albu``
NOT_REGISTRY = ('roi_layer', 'nms')

# one fresh interpreter per set of imports: registries are process-wide
CHILD = r'''
import json, sys
sys.path.insert(0, ROOT)
from mmengine.registry import Registry
from mmengine.utils import import_modules_from_strings
import importlib
scope, imports, jobs = json.loads(sys.argv[1])
import_modules_from_strings(imports)
registries = [r for name in (scope, 'mmengine', 'mmdiff')
              for r in vars(importlib.import_module(
                  name + '.registry')).values() if isinstance(r, Registry)]
missing = []
for path, types in jobs:
    for name in types:
        if not any(r.get(name) is not None for r in registries):
            missing.append([path, name])
print('MISSING ' + json.dumps(missing))
'''


def _types(node, out: set) -> set:
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            out.add(node['type'])
        for key, value in node.items():
            if key not in NOT_REGISTRY and not (
                    key == 'transforms' and node.get('type') == 'Albu'):
                _types(value, out)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _types(value, out)
    return out


def test_custom_imports_register_every_type():
    groups = defaultdict(list)
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        imports = tuple((cfg.get('custom_imports') or {}).get('imports', []))
        groups[(cfg.default_scope, imports)].append(
            (osp.relpath(path, ROOT), sorted(_types(cfg.to_dict(), set()))))
    missing = []
    for (scope, imports), jobs in sorted(groups.items()):
        out = subprocess.run(
            [sys.executable, '-c', CHILD.replace('ROOT', repr(ROOT), 1),
             json.dumps([scope, list(imports), jobs])], cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            timeout=600)
        lines = [ln for ln in out.stdout.splitlines()
                 if ln.startswith('MISSING ')]
        assert out.returncode == 0 and lines, out.stderr[-3000:]
        missing += json.loads(lines[-1][len('MISSING '):])
    assert not missing, (
        'types not registered by the config\'s own custom_imports '
        f'(config, type): {missing}')
