"""Registries of mmdiff.

``MODELS`` is a child of mmengine's root registry with the scope ``mmdiff``.
Host configs keep their own ``default_scope`` ('mmseg' or 'mmdet') and name
our modules with the scope prefix, e.g. ``backbone=dict(type='mmdiff.VPD')``;
mmengine then imports ``mmdiff.registry`` and, through ``locations``,
``mmdiff.models``. ``HOOKS`` works the same way for training hooks
(``custom_hooks=[dict(type='mmdiff.NaNGuardHook')]``), found in
``mmdiff.engine``, and so does ``FUNCTIONS`` for callables named in
configs (the FSDP wrap policy ``'mmdiff.diffusion_block_wrap_policy'``).
"""
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry(
    'model', parent=MMENGINE_MODELS, scope='mmdiff',
    locations=['mmdiff.models'])

HOOKS = Registry(
    'hook', parent=MMENGINE_HOOKS, scope='mmdiff',
    locations=['mmdiff.engine'])

FUNCTIONS = Registry(
    'function', parent=MMENGINE_FUNCTIONS, scope='mmdiff',
    locations=['mmdiff.engine'])
