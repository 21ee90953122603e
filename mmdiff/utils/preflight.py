"""Checks that run before a Runner is built: a config that cannot run here
fails in the first second, naming the fix, not after the model (with real
weights: SD1.5 and the CLIP prompts) has been built.

* data pipelines whose transforms need an optional package
  (mmseg/mmdet ``Albu`` needs albumentations, the data-set extra);
* FlexibleRunner strategies (FSDP, DeepSpeed) that need GPUs and, for
  DeepSpeed, the ``deepspeed`` package.
"""
import importlib.util
from typing import Iterator, Sequence

import torch
from mmengine.config import Config

# pipeline transform -> (import name, how to install it)
DATASETS_EXTRA = ('bash tools/setup_env.sh --datasets  '
                  '(or: pip install --no-deps -r requirements/datasets.txt)')
PIPELINE_PACKAGES = {
    'Albu': ('albumentations', DATASETS_EXTRA),
}
DEEPSPEED_EXTRA = ('bash tools/setup_env.sh --deepspeed  '
                   '(or: pip install -r requirements/deepspeed.txt)')
DATALOADERS = {
    'train': ('train_dataloader', 'val_dataloader'),
    'test': ('test_dataloader', ),
}


def _transform_types(node) -> Iterator[str]:
    """Every ``type`` in a (nested) pipeline config."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node['type']
        for value in node.values():
            yield from _transform_types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _transform_types(value)


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_pipeline_packages(cfg: Config,
                            dataloaders: Sequence[str]) -> None:
    """Raise if a dataloader's pipeline needs a package that is missing.

    Args:
        cfg (Config): The config to run.
        dataloaders (Sequence[str]): The dataloader keys that will run.

    Raises:
        ImportError: Naming the transform, the package and the install
            command.
    """
    for key in dataloaders:
        loader = cfg.get(key)
        if not loader:
            continue
        for name in _transform_types(loader.get('dataset', {})):
            short = name.split('.')[-1]
            if short not in PIPELINE_PACKAGES:
                continue
            module, how = PIPELINE_PACKAGES[short]
            if not _installed(module):
                raise ImportError(
                    f'{cfg.filename}: {key} uses the {name} transform, which '
                    f'needs {module}, and it is not installed. Install the '
                    f'reference data-set extra: {how}')


def check_strategy(cfg: Config) -> None:
    """Raise if the config's FlexibleRunner strategy cannot run here.

    Raises:
        ImportError: DeepSpeed is asked for and not installed.
        RuntimeError: FSDP/DeepSpeed is asked for and there is no GPU.
    """
    strategy = cfg.get('strategy') or {}
    kind = str(strategy.get('type', '')).split('.')[-1]
    if kind not in ('FSDPStrategy', 'DeepSpeedStrategy'):
        return
    needs = 'NVIDIA GPUs (CUDA) and NCCL'
    if kind == 'DeepSpeedStrategy':
        needs += ' and the deepspeed package'
        if not _installed('deepspeed'):
            raise ImportError(
                f'{cfg.filename}: strategy {kind} needs {needs}; deepspeed '
                f'is not installed. Install it: {DEEPSPEED_EXTRA}')
    if not torch.cuda.is_available():
        raise RuntimeError(
            f'{cfg.filename}: strategy {kind} (runner_type '
            f"{cfg.get('runner_type')}) needs {needs}; this machine has no "
            f'usable GPU (torch {torch.__version__}). Run it on GPUs '
            '(bash tools/dist_train.sh CONFIG 8), or train the same model '
            'without the strategy overlay (the config it inherits, e.g. '
            'configs/vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py); '
            'docs/distributed.md says what fits where.')


def check_environment(cfg: Config, mode: str) -> None:
    """All pre-build checks for ``mode`` 'train' or 'test'."""
    check_pipeline_packages(cfg, DATALOADERS[mode])
    if mode == 'train':
        check_strategy(cfg)
