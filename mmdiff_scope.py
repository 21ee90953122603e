"""``_base_ = 'mmdiff::<config>'`` in any process, mmdiff imported or not.

mmengine resolves ``<package>::<config>`` bases for the packages in its
``MODULE2PACKAGE`` table only, and tags every object of such a base with
``_scope_=<package>``. Both are wrong for mmdiff as it stands: mmdiff is not
in the table until ``import mmdiff`` (the hosts' tools load the config before
anything imports it: "mmengine does not support to load mmdiff config"), and
mmdiff's configs are mmseg/mmdet configs, not configs of an 'mmdiff' scope:
tagged 'mmdiff', their ``EncoderDecoder``/``CocoDataset``/transforms are
looked up in mmdiff's registries (which hold only mmdiff's parts) instead of
the host's. This module adds mmdiff to the table and loads ``mmdiff::`` bases
with no scope tag, exactly as if the file had been given by path: every
object then builds in the config's ``default_scope`` (mmseg or mmdet), and
mmdiff's parts keep their ``mmdiff.`` prefix.

Why a patch of a private method: mmengine 0.10.7 has no public route.
``mmdet::``/``mmseg::`` bases resolve through ``Config._get_cfg_path``: the
prefix must be a key of the hard-coded ``mmengine.config.utils.
MODULE2PACKAGE`` (no registration API), its package is found with
``get_installed_path`` and the file under ``<package>/.mim/configs`` (or
through its metafiles), and the prefix is returned as the scope that
``Config._file2dict`` writes into every object of the base as ``_scope_``.
Nothing public lets a package add itself or load its bases unscoped, so
mmdiff adds its key to the table and wraps the method.
``tests/test_configs/test_mmdiff_scope.py`` pins what the wrapper relies on
(signature, return values, the call in ``_file2dict``, the scope tagging):
it fails on an mmengine whose private method changed, before users meet it.

It is applied by ``import mmdiff`` and, for processes that never import
mmdiff before reading a config, by ``mmdiff_scope.pth`` (installed next to
the package) when ``mmengine.config`` is first imported. It imports nothing
but the standard library until then.
"""
import importlib.abc
import importlib.util
import sys

_SCOPE = 'mmdiff'
_TARGET = 'mmengine.config.config'


def patch_mmengine_config(module=None) -> None:
    """Add mmdiff to mmengine's config packages; load its bases unscoped.

    Args:
        module (module, optional): ``mmengine.config.config``, imported when
            None. Defaults to None.
    """
    if module is None:
        import mmengine.config.config as module
    # imported by mmengine.config.config itself
    sys.modules['mmengine.config.utils'].MODULE2PACKAGE.setdefault(
        _SCOPE, _SCOPE)
    config_cls = module.Config
    original = config_cls.__dict__['_get_cfg_path'].__func__
    if getattr(original, '_mmdiff_unscoped', False):
        return

    def _get_cfg_path(cfg_path, filename):
        path, scope = original(cfg_path, filename)
        return path, (None if scope == _SCOPE else scope)

    _get_cfg_path._mmdiff_unscoped = True
    _get_cfg_path._mmdiff_original = original  # for the version guard test
    _get_cfg_path.__doc__ = original.__doc__
    config_cls._get_cfg_path = staticmethod(_get_cfg_path)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches ``mmengine.config.config`` right after it is executed."""

    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        sys.meta_path.remove(self)  # once, and find the real spec
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch_mmengine_config(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Patch now if mmengine's config is loaded, else when it is imported."""
    if _TARGET in sys.modules:
        patch_mmengine_config(sys.modules[_TARGET])
    elif not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
