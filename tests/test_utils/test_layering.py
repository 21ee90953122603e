"""mmdiff.utils sits below the models: importing it (and every module in
it) loads nothing from mmdiff.models, so the models may import utils
without a cycle."""
import subprocess
import sys

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
