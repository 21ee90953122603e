"""Version guard of ``mmdiff_scope``: mmdiff's ``mmdiff::`` bases rely on
mmengine's private ``Config._get_cfg_path`` (no public route exists in
mmengine 0.10.7, see mmdiff_scope.py). These fail on an mmengine whose
private method or its use changed: re-check mmdiff_scope.py then. The
user's path (a foreign config, the hosts' and our tools/train.py) runs in
tests/test_tools/test_host_tools.py."""
import inspect
import os.path as osp

from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.utils import get_installed_path

import mmdiff  # noqa: F401 (applies the patch, as the .pth file does)

SEG = 'demo/vpd_tiny-fpn_demo-seg.py'
MMSEG_BASE = '_base_/default_runtime.py'


def _methods():
    patched = Config.__dict__['_get_cfg_path']
    assert isinstance(patched, staticmethod)
    patched = patched.__func__
    assert patched._mmdiff_unscoped
    return patched, patched._mmdiff_original


def test_private_cfg_path_method_is_the_one_patched(tmp_path):
    patched, original = _methods()
    assert list(inspect.signature(original).parameters) == [
        'cfg_path', 'filename']
    assert MODULE2PACKAGE['mmdiff'] == 'mmdiff'
    child = str(tmp_path / 'child.py')
    # a package base: the .mim file and the package as the scope
    expected = osp.join(get_installed_path('mmdiff'), '.mim', 'configs', SEG)
    assert original(f'mmdiff::{SEG}', child) == (expected, 'mmdiff')
    assert patched(f'mmdiff::{SEG}', child) == (expected, None)
    mmseg = osp.join(get_installed_path('mmsegmentation'), '.mim', 'configs',
                     MMSEG_BASE)
    for method in (original, patched):  # other packages keep their scope
        assert method(f'mmseg::{MMSEG_BASE}', child) == (mmseg, 'mmseg')
        assert method('base.py', child) == (str(tmp_path / 'base.py'), None)
    # Config reads every base through it
    assert 'Config._get_cfg_path(' in inspect.getsource(Config._file2dict)


def test_package_bases_are_tagged_with_the_returned_scope(tmp_path):
    """What the patch undoes: mmengine writes the returned scope into the
    base's objects; mmdiff's bases load untagged (host scope)."""
    mmseg_child = tmp_path / 'mmseg_child.py'
    mmseg_child.write_text(f"_base_ = 'mmseg::{MMSEG_BASE}'\n")
    cfg = Config.fromfile(str(mmseg_child))
    assert cfg.visualizer._scope_ == 'mmseg'
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = 'mmdiff::{SEG}'\n")
    cfg = Config.fromfile(str(child))
    assert cfg.model.backbone.type == 'mmdiff.VPD'
    # the demo's model (written in mmdiff's file) builds in the host scope
    assert '_scope_' not in cfg.model and cfg.default_scope == 'mmseg'
