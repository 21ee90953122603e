"""docs/extending.md's examples, run as a user would use them.

The page's Python blocks, in order, become a user's module
``my_project/backbones.py`` (the classes, and the page's own checks, which
run when it is imported); the config block then imports that module
through ``custom_imports`` and is built as a whole mmseg segmentor, whose
neck must read the new backbone's outputs.
"""
import importlib
import re
import sys

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope

from mmdiff.registry import MODELS as MMDIFF_MODELS
from mmdiff.testing import demo_images

DOC = 'docs/extending.md'
FENCE = re.compile(r'^```python\n(.*?)^```', re.M | re.S)


def test_extending_examples_run(tmp_path, monkeypatch):
    import os.path as osp
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    with open(osp.join(root, DOC)) as f:
        blocks = FENCE.findall(f.read())
    configs = [b for b in blocks if b.startswith('_base_ =')]
    code = [b for b in blocks if not b.startswith('_base_ =')]
    assert len(configs) == 1 and len(code) >= 4, 'the page changed shape'

    package = tmp_path / 'my_project'
    package.mkdir()
    (package / '__init__.py').write_text('')
    (package / 'backbones.py').write_text('\n\n'.join(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(MMDIFF_MODELS.module_dict)
    try:
        module = importlib.import_module('my_project.backbones')  # checks
        assert module.backbone.out_channels == (32, 67, 67, 64)

        cfg_file = tmp_path / 'my_config.py'
        cfg_file.write_text(configs[0])
        cfg = Config.fromfile(str(cfg_file))  # imports my_project.backbones
        init_default_scope(cfg.default_scope)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        assert type(model.backbone).__name__ == 'MultiTimestepBackbone'
        assert list(cfg.model.neck.in_channels) == list(
            model.backbone.out_channels)
        with torch.no_grad():
            outs = model.extract_feat(demo_images(batch=1, size=128))
        assert len(outs) == 4 and all(torch.isfinite(o).all() for o in outs)
    finally:  # the page's classes leave mmdiff's registry with the test
        for name in set(MMDIFF_MODELS.module_dict) - before:
            MMDIFF_MODELS._module_dict.pop(name)
        DefaultScope._instance_dict.clear()
        for name in ('my_project.backbones', 'my_project'):
            sys.modules.pop(name, None)
