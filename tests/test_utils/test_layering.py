"""mmdiff.utils sits below the models: importing it (and every module in
it) loads nothing from mmdiff.models, so the models may import utils
without a cycle."""
import ast
import glob
import os.path as osp
import subprocess
import sys

import mmdiff.utils

# the layers above utils (tools -> apis -> converters / engine / datasets ->
# models -> utils)
ABOVE = ('mmdiff.models', 'mmdiff.apis', 'mmdiff.engine', 'mmdiff.converters',
         'mmdiff.datasets', 'mmdiff.evaluation')

CODE = '''
import importlib, pkgutil, sys
import mmdiff.utils
loaded = [m for m in sys.modules if m.startswith('mmdiff.models')]
assert not loaded, f'import mmdiff.utils loaded {loaded}'
for info in pkgutil.iter_modules(mmdiff.utils.__path__):
    importlib.import_module('mmdiff.utils.' + info.name)
loaded = [m for m in sys.modules if m.startswith('mmdiff.models')]
assert not loaded, f'a module of mmdiff.utils loaded {loaded}'
'''


def test_utils_imports_nothing_from_models():
    proc = subprocess.run([sys.executable, '-c', CODE], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_no_utils_module_imports_a_layer_above():
    """Not even inside a function (a call-time cycle is still a cycle); only
    the compatibility ``__getattr__`` of names that moved up may."""
    found = []
    for path in glob.glob(osp.join(osp.dirname(mmdiff.utils.__file__),
                                   '*.py')):
        tree = ast.parse(open(path).read())
        compat = {id(n) for f in ast.walk(tree) if isinstance(
            f, ast.FunctionDef) and f.name == '__getattr__'
                  for n in ast.walk(f)}
        for node in ast.walk(tree):
            if id(node) in compat:
                continue
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or '']
            else:
                continue
            found += [f'{osp.basename(path)}: {n}' for n in names
                      if n.startswith(ABOVE)]
    assert not found
