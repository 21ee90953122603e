"""``--data-root``: move every data set of a config to another folder.

``--cfg-options data_root=...`` changes only the top-level variable: the
dataloaders and the COCO evaluator took copies of it when the config file
was read (standard OpenMMLab behaviour), so they keep the old paths. This
rewrites each copy: every dataset's ``data_root`` (inside wrappers such as
``ConcatDataset`` and ``RepeatDataset`` too) and every evaluator path
(``ann_file``; ``seg_prefix`` of mmdet's ``CocoPanopticMetric``) that
starts with its dataloader's old root.
"""
from typing import Iterator, Optional

from mmengine.config import Config, ConfigDict

# evaluator arguments that hold a path under the data root
EVALUATOR_PATHS = ('ann_file', 'seg_prefix')


def _datasets(node) -> Iterator[dict]:
    """Every dataset dict in a dataloader's ``dataset`` (wrappers nested)."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _datasets(item)
    elif isinstance(node, dict):
        if 'data_root' in node:
            yield node
        yield from _datasets(node.get('dataset'))
        yield from _datasets(node.get('datasets'))


def _move(path: str, old: Optional[str], new: str) -> str:
    if not old or not isinstance(path, str) or not path.startswith(old):
        return path
    rest = path[len(old):].lstrip('/')
    return new.rstrip('/') + '/' + rest


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader and evaluator of ``cfg`` at ``data_root``.

    Args:
        cfg (Config): The loaded config; changed in place.
        data_root (str): The folder that holds the data set's layout.
    """
    old_top = cfg.get('data_root')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        old = old_top
        if isinstance(loader, dict):
            for dataset in _datasets(loader.get('dataset')):
                old = dataset['data_root'] or old
                dataset['data_root'] = data_root
        evaluators = cfg.get(f'{split}_evaluator')
        if isinstance(evaluators, dict):
            evaluators = [evaluators]
        for evaluator in evaluators or []:
            if not isinstance(evaluator, (dict, ConfigDict)):
                continue
            for key in EVALUATOR_PATHS:
                if key in evaluator:
                    evaluator[key] = _move(evaluator[key], old, data_root)
    cfg.data_root = data_root
