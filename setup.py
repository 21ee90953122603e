"""mmdiff: diffusion U-Net backbones (VPD-style) for mmsegmentation and mmdetection."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
# Folders that OpenMMLab tools find inside the installed package: mmengine
# resolves `mmdiff::<config>` bases to `mmdiff/.mim/configs/<config>`.
MIM_ITEMS = ('configs', 'tools', 'model-index.yml')


def version() -> str:
    scope: dict = {}
    with open(osp.join(ROOT, 'mmdiff', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def requirements(name: str) -> list:
    """Requirement lines of ``requirements/<name>.txt`` without comments."""
    with open(osp.join(ROOT, 'requirements', f'{name}.txt')) as f:
        return [line.split('#')[0].strip() for line in f
                if line.split('#')[0].strip()]


def add_mim_extension() -> None:
    """Expose configs/ and tools/ as ``mmdiff/.mim`` (links when editable,
    copies when a wheel or sdist is built)."""
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    building = any(cmd in sys.argv
                   for cmd in ('build', 'build_py', 'bdist_wheel', 'sdist',
                               'install'))
    if not (editable or building):
        return
    mim = osp.join(ROOT, 'mmdiff', '.mim')
    os.makedirs(mim, exist_ok=True)
    for item in MIM_ITEMS:
        src, dst = osp.join(ROOT, item), osp.join(mim, item)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


class BuildPyWithPth(build_py):
    """Also put ``mmdiff_scope.pth`` at the top of the install: it makes
    ``mmdiff::`` bases resolve in processes that never import mmdiff (the
    hosts' tools); see ``mmdiff_scope.py``."""

    def run(self) -> None:
        super().run()
        self.copy_file(osp.join(ROOT, 'mmdiff_scope.pth'),
                       osp.join(self.build_lib, 'mmdiff_scope.pth'))


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmdiff',
        version=version(),
        description='Diffusion U-Net backbones (VPD-style) for OpenMMLab 2.x '
        '(mmsegmentation, mmdetection)',
        long_description=open(osp.join(ROOT, 'README.md')).read()
        if osp.exists(osp.join(ROOT, 'README.md')) else '',
        long_description_content_type='text/markdown',
        python_requires='>=3.9',
        packages=find_packages(exclude=('configs', 'tools', 'tests',
                                        'projects', 'data')),
        py_modules=['mmdiff_scope'],
        cmdclass={'build_py': BuildPyWithPth},
        include_package_data=True,
        package_data={'mmdiff': ['.mim/**/*', '.mim/*']},
        install_requires=requirements('runtime') + requirements('mminstall')
        + ['torch>=2.1'],
        extras_require={'tests': requirements('tests')},
        license='Apache License 2.0',
        zip_safe=False,
    )
