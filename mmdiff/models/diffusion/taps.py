"""Feature taps: forward hooks on named modules of a U-Net.

A tap stores the output of a named sub-module during one forward. Once every
tap has fired the forward can stop early (:class:`TapsDone`), so the layers
past the last tap (``conv_norm_out``/``conv_out`` for VPD) are never run.
"""
import re
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterator, List, Sequence

import torch
from torch import Tensor, nn


class TapsDone(Exception):
    """Raised by the last tap to stop the U-Net forward early."""


def vpd_default_taps(unet: nn.Module) -> List[str]:
    """VPD's tap points for any ``UNet2DConditionModel`` block layout.

    VPD taps ldm ``output_blocks`` 1, 4, 7 and the final one: in every up
    block but the last, the output of its second-to-last layer (attention if
    the block has cross-attention, else resnet), i.e. before the layer that
    upsamples; plus the output of the last up block. For SD1.x/2.x this is,
    in the returned (finest-first) order, ``up_blocks.3``,
    ``up_blocks.2.attentions.1``, ``up_blocks.1.attentions.1`` and
    ``up_blocks.0.resnets.1``.

    Args:
        unet (nn.Module): A diffusers ``UNet2DConditionModel``.

    Returns:
        list[str]: Module paths, finest resolution first.
    """
    blocks = unet.up_blocks
    paths = [f'up_blocks.{len(blocks) - 1}']
    for i in range(len(blocks) - 2, -1, -1):
        block = blocks[i]
        layer = max(len(block.resnets) - 2, 0)
        kind = 'attentions' if getattr(block, 'attentions', None) else \
            'resnets'
        paths.append(f'up_blocks.{i}.{kind}.{layer}')
    return paths


class FeatureTaps:
    """Collect the outputs of named sub-modules with forward hooks.

    Hooks only record while :meth:`capture` is active, so gradient
    checkpointing re-computation during backward leaves them untouched.

    Args:
        model (nn.Module): Module holding the taps.
        paths (Sequence[str]): Dotted module paths (``model.get_submodule``).
        stop_early (bool): Raise :class:`TapsDone` once all taps fired.
            Defaults to True.
        owner (str): What ``model`` is, for errors. Defaults to 'U-Net'.
        example (str): An example path, for errors. Defaults to
            "'up_blocks.1.attentions.1'".
        output_index (int): Which element of a tuple output is recorded
            (SD3 / FLUX blocks return ``(text, image)``: 1). Defaults to 0.
    """

    def __init__(self, model: nn.Module, paths: Sequence[str],
                 stop_early: bool = True, owner: str = 'U-Net',
                 example: str = "'up_blocks.1.attentions.1'",
                 output_index: int = 0) -> None:
        self.paths = list(paths)
        self.output_index = output_index
        self.stop_early = stop_early
        self.features: Dict[str, Tensor] = {}
        self._active = False
        self._handles = []
        for path in self.paths:
            try:
                module = model.get_submodule(path)
            except AttributeError as e:
                raise ValueError(
                    f'Tap {path!r} is not a module of the {owner}; use '
                    f'dotted paths from its named_modules(), e.g. '
                    f'{example}.') from e
            # A partial of a bound method (not a closure) so that
            # ``copy.deepcopy`` of the model (e.g. EMA) re-binds the copy.
            self._handles.append(
                module.register_forward_hook(partial(self._record, path)))

    def _record(self, path: str, module: nn.Module, args, output) -> None:
        """Forward hook body: store the output, stop when all taps fired."""
        if not self._active:
            return
        if not isinstance(output, Tensor):
            output = output[self.output_index]
        self.features[path] = output
        # Not under torch.jit.trace (mmengine's get_model_complexity_info,
        # mmdet's get_flops.py): an exception out of a hook leaves the
        # tracer's module scopes open and torch aborts the process
        # (INTERNAL ASSERT in FixupTraceScopeBlocks). The rest of the U-Net
        # then runs, and is counted, as it would without early stopping.
        if self.stop_early and len(self.features) == len(self.paths) \
                and not torch.jit.is_tracing():
            raise TapsDone

    @staticmethod
    def last_fired_is_block(features: Dict[str, Tensor]) -> bool:
        """Whether the tap that fired last is a whole U-Net block.

        Stopping from inside a block (e.g. a resnet run under gradient
        checkpointing) would break recomputation, so callers only stop
        early when the last tap is a top-level block.

        Args:
            features (dict[str, Tensor]): Filled by :meth:`capture`, in
                firing order.
        """
        last = list(features)[-1]
        return re.fullmatch(r'(down_blocks|up_blocks)\.\d+|mid_block',
                            last) is not None

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Never stop early inside: a probing forward sees every tap fire
        (and the layers after them); :meth:`settle` then decides."""
        self.stop_early = False
        try:
            yield
        finally:
            self.stop_early = False

    def settle(self, features: Dict[str, Tensor]) -> None:
        """Stop early from now on iff the tap that fired last in a probing
        forward (``features``, in firing order) is a whole U-Net block
        (:meth:`last_fired_is_block`)."""
        self.stop_early = self.last_fired_is_block(features)

    @contextmanager
    def capture(self) -> Iterator[Dict[str, Tensor]]:
        """Record tap outputs during the enclosed forward.

        Yields:
            dict[str, Tensor]: Filled with ``path -> output`` as taps fire.
        """
        self.features = {}
        self._active = True
        try:
            yield self.features
        finally:
            self._active = False
            # The caller owns the yielded dict; drop our reference so no
            # activations outlive the forward.
            self.features = {}

    def remove(self) -> None:
        """Remove all hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
