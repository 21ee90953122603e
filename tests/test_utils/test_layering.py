"""No import circle in mmdiff: between any two of its modules, and between
any two of its packages (apis, datasets, models.backbones, utils, ...);
mmdiff.utils sits below the models: importing it (and every module in it)
loads nothing from mmdiff.models, so the models may import utils without a
cycle."""
import ast
import glob
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Set

import mmdiff
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
    """Not even inside a function (a call-time cycle is still a cycle)."""
    found = []
    for path in glob.glob(osp.join(osp.dirname(mmdiff.utils.__file__),
                                   '*.py')):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or '']
            else:
                continue
            found += [f'{osp.basename(path)}: {n}' for n in names
                      if n.startswith(ABOVE)]
    assert not found


def _modules() -> Dict[str, tuple]:
    """``name -> (path, is_package)`` of every module of the installed
    mmdiff (its ``.mim`` folder left out)."""
    root = osp.dirname(osp.dirname(mmdiff.__file__))
    out = {}
    for folder, dirs, files in os.walk(osp.dirname(mmdiff.__file__)):
        dirs[:] = [d for d in dirs if not d.startswith(('.', '__'))]
        for file in files:
            if file.endswith('.py'):
                parts = osp.relpath(osp.join(folder, file),
                                    root)[:-3].split(osp.sep)
                is_package = parts[-1] == '__init__'
                out['.'.join(parts[:-1] if is_package else parts)] = (
                    osp.join(folder, file), is_package)
    return out


def _import_graph(modules: Dict[str, tuple]) -> Dict[str, Set[str]]:
    """Module -> the mmdiff modules it imports, anywhere in its code (a
    function's import closes a circle at call time); ``from p import x``
    counts as importing ``p.x`` where that is a module, else ``p``."""
    graph = {}
    for name, (path, is_package) in modules.items():
        here = name.split('.') if is_package else name.split('.')[:-1]
        found = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                parts = here[:len(here) - node.level + 1] if node.level \
                    else []
                source = '.'.join(parts + ([node.module] if node.module
                                           else []))
                for alias in node.names:
                    sub = f'{source}.{alias.name}'
                    found.update([sub] if sub in modules else
                                 [source] if source in modules else [])
        graph[name] = found - {name}
    return graph


def _circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    circles = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while not part or part[-1] != node:
                part.append(stack.pop())
            if len(part) > 1:
                circles.append(sorted(part))

    for node in graph:
        if node not in index:
            visit(node)
    return circles


def test_no_import_circle_between_modules_or_packages():
    """Every module and every package (mmdiff.apis, mmdiff.datasets,
    mmdiff.models.backbones, ...; a top-level module such as
    mmdiff.registry is a node of its own) imports one way only."""
    modules = _modules()
    graph = _import_graph(modules)
    # the graph sees the imports (a check of the check)
    assert 'mmdiff.models.backbones' in graph['mmdiff.apis.host_checks']
    assert 'mmdiff.datasets.demo_scene' in graph['mmdiff.datasets.demo_data']
    assert _circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == [['a', 'b',
                                                               'c']]
    assert _circles(graph) == []

    def package(name):
        return name if modules[name][1] or name.count('.') == 1 \
            else name.rsplit('.', 1)[0]

    packages: Dict[str, Set[str]] = {}
    for name, deps in graph.items():
        packages.setdefault(package(name), set()).update(
            package(d) for d in deps if package(d) != package(name))
    assert {'mmdiff.apis', 'mmdiff.datasets', 'mmdiff.models.backbones',
            'mmdiff.utils'} <= set(packages)
    assert _circles(packages) == []
