"""FSDP wrapping policy for diffusion backbones.

The backbone stops the U-Net forward after its last feature tap (the
:class:`~mmdiff.models.diffusion.TapsDone` exception, raised by a forward
hook on ``up_blocks.3`` for SD). An FSDP unit around a module whose forward
is cut short never runs its post-forward step, and its backward then fails
(``Expects BACKWARD_PRE or BACKWARD_POST state but got FORWARD``). Size-based
policies wrap exactly those modules (the U-Net, its up blocks), so this
policy wraps the leaves whose forward always completes: diffusers' resnet
and transformer blocks (about 20M parameters each in SD1.5, 1-50 per U-Net
level) and, for the host parts, modules above ``min_num_params`` that hold
no diffusers block.

Config use (``configs/_base_/strategies/fsdp.py``)::

    strategy = dict(type='FSDPStrategy', model_wrapper=dict(
        auto_wrap_policy=dict(
            type='mmdiff.diffusion_block_wrap_policy',
            min_num_params=int(1e7))))
"""
from torch import nn

from mmdiff.registry import FUNCTIONS

_BLOCK_NAMES = ('ResnetBlock2D', 'Transformer2DModel',
                'BasicTransformerBlock')


def _block_classes() -> tuple:
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import \
        Transformer2DModel
    return ResnetBlock2D, Transformer2DModel, BasicTransformerBlock


def _holds_block(module: nn.Module, blocks: tuple) -> bool:
    return any(isinstance(m, blocks) for m in module.modules())


@FUNCTIONS.register_module()
def diffusion_block_wrap_policy(module: nn.Module, recurse: bool,
                                nonwrapped_numel: int,
                                min_num_params: int = int(1e7)) -> bool:
    """FSDP ``auto_wrap_policy``: diffusers blocks, never their parents.

    Args:
        module (nn.Module): Candidate module (FSDP calls this per module).
        recurse (bool): True while FSDP asks whether to descend.
        nonwrapped_numel (int): Parameters not yet wrapped below ``module``.
        min_num_params (int): Host modules (neck, head) with at least this
            many unwrapped parameters and no diffusers block inside become
            units too. Defaults to 1e7.

    Returns:
        bool: Descend (``recurse=True``) / wrap this module (``False``).
    """
    blocks = _block_classes()
    if recurse:
        return not isinstance(module, blocks)
    if isinstance(module, blocks[:2]):  # a whole resnet / transformer
        return True
    return nonwrapped_numel >= min_num_params and \
        not _holds_block(module, blocks)
