"""The checks an entry point runs on a built Runner before any step."""
from torch import nn

from mmdiff.engine.hooks.input_guard_hook import register_input_guard
from mmdiff.engine.hooks.prediction_guard_hook import \
    register_prediction_guard
from mmdiff.utils.checkpoint_io import resolve_checkpoint_path
from mmdiff.utils.data_checks import guard_dataloaders
from .checkpoint_checks import check_checkpoint
from .host_checks import check_model


def check_before_run(runner, mode: str = 'train') -> None:
    """Check a built Runner's model and the checkpoint it will load.

    Call right after ``Runner.from_cfg`` in an entry point. Models a
    FlexibleRunner has not built yet are not checked.

    Args:
        runner: An mmengine ``Runner``.
        mode (str): ``'train'``: a ``load_from`` checkpoint must match in
            the U-Net/VAE (fine-tuning may change heads), a resumed one
            everywhere. ``'test'``: everywhere. Defaults to 'train'.

    Also registers :class:`mmdiff.engine.InputGuardHook` (bad images,
    labels, depth maps, empty data sets) and
    :class:`mmdiff.engine.PredictionGuardHook` (NaN/inf predictions) unless
    the config has them, and makes data-loading failures name their file
    (:func:`mmdiff.utils.data_checks.guard_dataloaders`).
    """
    model = getattr(runner, 'model', None)
    if isinstance(model, nn.Module):
        check_model(model)
    register_input_guard(runner)
    register_prediction_guard(runner)
    guard_dataloaders(runner)
    path = getattr(runner, '_load_from', None)
    resume = getattr(runner, '_resume', False)
    if resume and path is None:
        from mmengine.runner import find_latest_checkpoint
        path = find_latest_checkpoint(runner.work_dir)
    if path is not None:
        local = resolve_checkpoint_path(path)
        model = model if isinstance(model, nn.Module) else None
        check_checkpoint(local, model, strict=bool(resume) or mode == 'test')
        if '://' in str(path) and \
                getattr(runner, '_load_from', None) == path:
            runner._load_from = local  # mmengine loads the bytes checked here
