"""Check an environment against the requirement pins, not a stamp.

    python mmdiff/utils/envcheck.py [--no-deps FILE]... FILE...

Compares every ``name==version`` (or other specifier) line of the
requirement files with the version ``importlib.metadata`` reports, and runs
``pip check`` (declared dependencies of what is installed). Packages listed
in ``--no-deps`` files are installed with ``pip install --no-deps`` on
purpose (their declared pins are not what they import), so ``pip check``
complaints about *their* requirements are not counted; complaints about
packages that are not pinned (installed by hand) are printed as notes.
Prints one line per problem and exits 1 when there is any, 0 otherwise.

``tools/setup_env.sh`` runs it (by path: it imports only the standard
library and pip's vendored ``packaging``) before it trusts its stamp, and
reinstalls the pins when it fails: a ``pip install`` of something else that
up- or downgraded a pinned package is repaired by the next ``make install``.
"""
import argparse
import re
import subprocess
import sys
from importlib import metadata
from typing import Iterable, List, Tuple

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare venv: pip's copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name


def read_requirements(path: str) -> List[Requirement]:
    """The requirements of a pip requirements file (comments, blank lines
    and option lines such as ``-r`` / ``--find-links`` skipped)."""
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                out.append(Requirement(line))
    return out


def pin_problems(requirements: Iterable[Requirement]) -> List[str]:
    """One line per requirement that is missing or whose installed version
    is outside its specifier."""
    problems = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            problems.append(f'{req.name}: not installed (pinned {req})')
            continue
        if req.specifier and not req.specifier.contains(version,
                                                        prereleases=True):
            problems.append(f'{req.name}: {version} installed, pinned {req}')
    return problems


def pip_check_problems(ours: Iterable[str], no_deps: Iterable[str] = ()
                       ) -> Tuple[List[str], List[str]]:
    """``pip check`` lines as ``(problems, notes)``: problems are those about
    the requirements of a pinned package (``ours``, e.g. a dependency of
    diffusers at a version it does not accept); those about packages
    installed with ``--no-deps`` on purpose are dropped; the rest (packages
    installed by hand) are notes."""
    ours = {canonicalize_name(n) for n in ours}
    skip = {canonicalize_name(n) for n in no_deps}
    proc = subprocess.run(
        [sys.executable, '-m', 'pip', 'check', '--disable-pip-version-check'],
        capture_output=True, text=True)
    problems, notes = [], []
    for line in proc.stdout.splitlines():
        if not line.strip() or line.startswith('No broken requirements'):
            continue
        match = re.match(r'^(\S+) \S+ (?:has|requires) ', line)
        name = canonicalize_name(match.group(1)) if match else None
        if name in skip:
            continue
        (problems if name in ours or name is None else notes).append(
            f'pip check: {line}')
    return problems, notes


def check(files: Iterable[str], no_deps_files: Iterable[str] = ()
          ) -> Tuple[List[str], List[str], List[str]]:
    """``(pin problems, pip check problems, pip check notes)`` of the
    environment running this interpreter."""
    files, no_deps_files = list(files), list(no_deps_files)
    pinned = [r for f in files for r in read_requirements(f)]
    no_deps = [r for f in no_deps_files for r in read_requirements(f)]
    deps, notes = pip_check_problems([r.name for r in pinned],
                                     [r.name for r in no_deps])
    return pin_problems(pinned + no_deps), deps, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('files', nargs='*', help='requirement files')
    parser.add_argument('--no-deps', action='append', default=[],
                        metavar='FILE', help='requirement files installed '
                        'with pip install --no-deps')
    args = parser.parse_intermixed_args(argv)
    pins, deps, notes = check(args.files, args.no_deps)
    for line in pins + deps:
        print(line)
    for line in notes:
        print(f'note (not a pinned package): {line}')
    return 1 if pins or deps else 0


if __name__ == '__main__':
    sys.exit(main())
