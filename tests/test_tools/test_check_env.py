"""tools/setup_env.sh checks the installed versions against the pins
(mmdiff/utils/envcheck.py), not only its stamp: a later ``pip install``
that up- or downgraded a pinned package (``pip install openmim`` took
setuptools and filelock back) is found and reinstalled."""
import os.path as osp
import subprocess
import sys
from importlib import metadata

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHECK = osp.join(ROOT, 'mmdiff', 'utils', 'envcheck.py')


def _run(*args):
    return subprocess.run([sys.executable, CHECK, *args],
                          capture_output=True, text=True, timeout=300)


def test_drift_from_the_pins_is_found(tmp_path):
    # as `make test` installed it: nothing to report (pip check complaints
    # about what is installed with --no-deps on purpose do not count)
    req = osp.join(ROOT, 'requirements')
    files = [osp.join(req, f'{n}.txt') for n in ('torch', 'mminstall',
                                                 'runtime', 'tests')]
    for n in ('runtime-nodeps', 'tests-nodeps', 'datasets'):
        files += ['--no-deps', osp.join(req, f'{n}.txt')]
    ok = _run(*files)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    filelock = metadata.version('filelock')
    pins = tmp_path / 'runtime.txt'
    # a pin the environment no longer matches, and one that is missing
    pins.write_text('# a comment\nfilelock==3.0.0\nnot-a-package-mmdiff==1.0'
                    '\n')
    bad = _run(str(pins))
    assert bad.returncode == 1
    assert f'filelock: {filelock} installed, pinned filelock==3.0.0' \
        in bad.stdout
    assert 'not-a-package-mmdiff: not installed' in bad.stdout


def test_setup_script_checks_the_pins_before_trusting_its_stamp():
    """The fast path of tools/setup_env.sh ('up to date') runs the check
    with every requirement file it installs; drift reinstalls them."""
    with open(osp.join(ROOT, 'tools', 'setup_env.sh')) as f:
        script = f.read()
    fast = script[script.index('if [ -f "$STAMP" ]'):]
    fast = fast[:fast.index('\nfi\n')]
    assert 'check_env' in fast and 'up to date' in fast
    for name in ('torch', 'mminstall', 'runtime', 'runtime-nodeps',
                 'tests', 'tests-nodeps', 'datasets', 'deepspeed'):
        assert f'$R/{name}.txt' in script, name


def test_documented_levers_and_drawing_come_with_make_install():
    """`make install` installs requirements/runtime.txt: LoRA's peft was
    only in the test extras (the README documents `lora=dict(rank=8)`),
    and OpenCV, which mmcv/mmseg/mmdet draw and decode with, was unpinned
    (whatever was newest)."""
    sys.path.insert(0, osp.dirname(CHECK))
    try:
        import envcheck
    finally:
        sys.path.pop(0)
    runtime = {r.name: r for r in envcheck.read_requirements(
        osp.join(ROOT, 'requirements', 'runtime.txt'))}
    assert str(runtime['peft'].specifier).startswith('==')
    assert str(runtime['opencv-python'].specifier).startswith('==')
    # and the environment the tests run in has exactly those
    assert runtime['peft'].specifier.contains(metadata.version('peft'))
    assert runtime['opencv-python'].specifier.contains(
        metadata.version('opencv-python'))
