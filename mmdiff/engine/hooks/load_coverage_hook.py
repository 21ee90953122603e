"""Say once, clearly, what a ``load_from``/``--checkpoint`` leaves unloaded.

mmengine loads ``load_from`` (and ``tools/test.py``'s checkpoint) with
``strict=False``: parameters that are absent from the file, or whose shape
differs, keep their initial (random) values, and the only trace is a long
warning among the start-up logs. A converted checkpoint loaded into a config
whose head is narrower than the source's passes that way and evaluates a
half-random model.

:class:`LoadCoverageHook` runs in mmengine's ``after_load_checkpoint`` (after
the file is read, before it is copied into the model), compares the file's
state dict with the model's, and logs ONE message per load: per top-level part
(backbone, neck, decode_head, ...) how many tensors stay unloaded, why
(absent / shape differs), and the first names. With ``strict=True`` (or
``--cfg-options strict_load=True``) it raises instead, before anything is
copied into the model.
"""
import re
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmdiff.registry import HOOKS

FIRST_NAMES = 5
# mmengine's Runner.load_checkpoint default ``revise_keys``
_REVISE = [(r'^module\.', '')]


def unloaded_tensors(model_state: Dict, ckpt_state: Dict
                     ) -> Tuple[Dict[str, List[str]], Dict[str, int]]:
    """Model tensors that a non-strict load of ``ckpt_state`` leaves as they
    are.

    A LoRA-wrapped layer's ``<layer>.base_layer.<w>`` counts as loaded from a
    plain ``<layer>.<w>`` (mmdiff's LoRA load pre-hook maps it); the LoRA
    adapters (``lora_*``) are new by design and not counted.

    Args:
        model_state (dict): The model's ``state_dict()``.
        ckpt_state (dict): The checkpoint's state dict (``module.`` removed).

    Returns:
        tuple: ``{part: [description, ...]}`` of unloaded tensors (part = the
        first name component) and ``{part: total tensors}``.
    """
    unloaded, totals = defaultdict(list), defaultdict(int)
    for name, tensor in model_state.items():
        part = name.split('.', 1)[0]
        if 'lora_' in name:
            continue
        totals[part] += 1
        src = ckpt_state.get(name)
        if src is None and '.base_layer.' in name:
            src = ckpt_state.get(name.replace('.base_layer.', '.'))
        if src is None:
            unloaded[part].append(f'{name} (absent)')
        elif hasattr(src, 'shape') and tuple(src.shape) != tuple(
                tensor.shape):
            unloaded[part].append(
                f'{name} (checkpoint {list(src.shape)}, model '
                f'{list(tensor.shape)})')
    return dict(unloaded), dict(totals)


def coverage_message(unloaded: Dict[str, List[str]],
                     totals: Dict[str, int], source: str = 'checkpoint'
                     ) -> Optional[str]:
    """One message for :func:`unloaded_tensors`' result, None if complete."""
    if not unloaded:
        return None
    lines = [f'{source}: {sum(map(len, unloaded.values()))} model tensors '
             'were NOT loaded and keep their initial (random) values:']
    for part, names in unloaded.items():
        shown = ', '.join(names[:FIRST_NAMES])
        more = f', ... ({len(names) - FIRST_NAMES} more)' \
            if len(names) > FIRST_NAMES else ''
        lines.append(f'  {part}: {len(names)} of {totals[part]} '
                     f'[{shown}{more}]')
    lines.append(
        'Check that the config matches the checkpoint (e.g. head widths, '
        'num_classes). To make this an error, add '
        "dict(type='mmdiff.LoadCoverageHook', strict=True) to custom_hooks "
        'or pass --cfg-options strict_load=True.')
    return '\n'.join(lines)


def _is_sharded(model) -> bool:
    """Whether FSDP wraps part of ``model`` (its state dict is gathered
    collectively, and parameter shapes are flat)."""
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(m, FullyShardedDataParallel)
               for m in model.modules())


@HOOKS.register_module()
class LoadCoverageHook(Hook):
    """Report (or refuse) checkpoint loads that leave model tensors unloaded.

    Args:
        strict (bool): Raise instead of warning. ``strict_load=True`` at the
            top level of the config does the same. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Compare the checkpoint read by ``runner`` with its model."""
        state = checkpoint.get('state_dict', checkpoint)
        for pattern, repl in _REVISE:
            state = {re.sub(pattern, repl, k): v for k, v in state.items()}
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        source = getattr(runner, '_load_from', None) or 'checkpoint'
        if _is_sharded(model):
            runner.logger.info(
                f'load_from {source}: not checked by LoadCoverageHook (the '
                'model is FSDP-sharded; its loader reports mismatches)')
            return
        unloaded, totals = unloaded_tensors(model.state_dict(), state)
        message = coverage_message(unloaded, totals, f'load_from {source}')
        if message is None:
            runner.logger.info(
                f'load_from {source}: every model tensor is in the '
                'checkpoint with its shape')
            return
        if self.strict or runner.cfg.get('strict_load', False):
            raise RuntimeError(message)
        runner.logger.warning(message)
