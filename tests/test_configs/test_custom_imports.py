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

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    p for pattern in ('configs/**/*.py', 'projects/*/configs/*.py')
    for p in glob.glob(osp.join(ROOT, pattern), recursive=True)
    if '_base_' not in p.split(osp.sep))
# ``type`` names that are not registry entries: mmcv ops by name, and the
# albumentations transforms inside mmseg's ``Albu``
NOT_REGISTRY = ('roi_layer', 'nms')

# One interpreter loads every config (no custom imports) and imports the
# hosts' heavy modules once; then one forked child per set of imports
# (registries are process-wide): it imports that set and looks every type up.
DRIVER = r'''
import importlib, json, os, sys
sys.path.insert(0, ROOT)
import mmdiff  # the mmdiff:: bases (imports no model, data set or metric)
from mmengine.config import Config
from mmengine.registry import Registry
from mmengine.utils import import_modules_from_strings
for name in ('mmengine.runner', 'mmseg.models', 'mmseg.datasets',
             'mmseg.evaluation', 'mmdet.models', 'mmdet.datasets',
             'mmdet.evaluation'):
    importlib.import_module(name)  # the hosts' own, as their registries do
groups = {}
for path in json.loads(sys.argv[1]):
    cfg = Config.fromfile(path, import_custom_modules=False)
    imports = tuple((cfg.get('custom_imports') or {}).get('imports', []))
    groups.setdefault((cfg.default_scope, imports), []).append(
        (path, cfg.to_dict()))
missing = []
for (scope, imports), configs in sorted(groups.items()):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into this loop
        code = 1
        try:
            os.close(read)
            import_modules_from_strings(list(imports))
            registries = [r for name in (scope, 'mmengine', 'mmdiff')
                          for r in vars(importlib.import_module(
                              name + '.registry')).values()
                          if isinstance(r, Registry)]
            found = [[path, t] for path, cfg in configs
                     for t in sorted(types(cfg, set()))
                     if not any(r.get(t) is not None for r in registries)]
            os.write(write, json.dumps(found).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        found = f.read()
    assert os.waitpid(pid, 0)[1] == 0 and found, (scope, imports)
    missing += json.loads(found)
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
    import inspect
    driver = (f'ROOT = {ROOT!r}\nNOT_REGISTRY = {NOT_REGISTRY!r}\n'
              + inspect.getsource(_types).replace('_types', 'types')
              + DRIVER)
    out = subprocess.run(
        [sys.executable, '-c', driver,
         json.dumps([osp.relpath(p, ROOT) for p in CONFIGS])], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        timeout=900)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('MISSING ')]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    missing = json.loads(lines[-1][len('MISSING '):])
    assert not missing, (
        'types not registered by the config\'s own custom_imports '
        f'(config, type): {missing}')
