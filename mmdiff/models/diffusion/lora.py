"""LoRA fine-tuning of a diffusers U-Net through peft (diffusers' adapters).

A memory lever beside full fine-tuning and freezing: the U-Net's weights are
frozen and low-rank adapters on its attention projections are trained, so
gradients and optimizer state cover only the adapters (about 0.1-1% of an
SD1.5 U-Net's 860M parameters).

Opt in with the backbone argument ``lora`` (e.g. ``model.backbone.lora=
dict(rank=8)``): :class:`~mmdiff.models.backbones.DiffusionBackbone` checks
it with :func:`check_lora_cfg` and calls :func:`add_unet_lora` right after
building the U-Net, before its feature probe. Pretrained weights go through
:func:`lora_compatible_state_dict` (in ``load_diffusion_weights`` and
``load_unet_weights``), since peft renames each wrapped layer's weight to
``<layer>.base_layer.weight``.
"""
import inspect
from typing import Dict, Optional, Sequence

from torch import Tensor, nn

# The attention projections (self- and cross-attention), as in diffusers'
# own SD LoRA training scripts.
DEFAULT_TARGETS = ('to_q', 'to_k', 'to_v', 'to_out.0')


def _require_peft():
    try:
        import peft  # noqa: F401
    except ImportError as e:
        raise ImportError(
            'LoRA needs peft, part of the runtime requirements: `make '
            'install` (bash tools/setup_env.sh) installs it, or `pip install '
            'peft==0.21.2` (it brings accelerate and psutil, no '
            'torchvision).') from e


def add_unet_lora(unet: nn.Module,
                  rank: int = 8,
                  alpha: Optional[float] = None,
                  target_modules: Sequence[str] = DEFAULT_TARGETS,
                  dropout: float = 0.0,
                  adapter_name: str = 'default') -> int:
    """Freeze the U-Net and add trainable LoRA adapters with peft.

    Uses diffusers' ``unet.add_adapter(LoraConfig(...))``. Adapters start
    as the identity (peft zero-inits ``lora_B``), so features do not change
    until training moves them.

    Args:
        unet (nn.Module): A diffusers ``UNet2DConditionModel`` or
            diffusion transformer.
        rank (int): LoRA rank ``r``. Defaults to 8.
        alpha (float, optional): LoRA scale numerator (scale = alpha / r).
            Defaults to None (= rank, scale 1).
        target_modules (Sequence[str]): Module name suffixes to wrap.
            Defaults to the attention projections.
        dropout (float): LoRA dropout. Defaults to 0.
        adapter_name (str): peft adapter name. Defaults to 'default'.

    Returns:
        int: Number of trainable (adapter) parameters.
    """
    _require_peft()
    from peft import LoraConfig
    if rank < 1:
        raise ValueError(f'LoRA rank must be >= 1, got {rank}.')
    unet.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha if alpha is not None
                        else rank, lora_dropout=dropout,
                        init_lora_weights=True,
                        target_modules=list(target_modules))
    if hasattr(unet, 'add_adapter'):
        unet.add_adapter(config, adapter_name=adapter_name)
    else:  # diffusers models without PeftAdapterMixin (PixArt)
        from peft import inject_adapter_in_model
        inject_adapter_in_model(config, unet, adapter_name=adapter_name)
    # checkpoints of the plain U-Net (load_from, init_cfg, converted model
    # zoo files) name the wrapped weights without `base_layer.`
    hook = _plain_keys_to_base_layer
    for module in unet.modules():
        if isinstance(getattr(module, 'base_layer', None), nn.Module):
            module.register_load_state_dict_pre_hook(hook)
    trainable = 0
    for name, param in unet.named_parameters():
        is_lora = 'lora_' in name
        param.requires_grad = is_lora
        trainable += param.numel() if is_lora else 0
    if trainable == 0:
        raise ValueError(f'No U-Net module matched LoRA target_modules '
                         f'{list(target_modules)}.')
    return trainable


def check_lora_cfg(lora: Optional[dict],
                   freeze_unet: bool = False) -> Optional[dict]:
    """Validate a backbone's ``lora`` argument before the U-Net is built.

    Args:
        lora (dict, optional): Keyword arguments of :func:`add_unet_lora`
            (``rank``, ``alpha``, ``target_modules``, ``dropout``,
            ``adapter_name``), or None for no LoRA.
        freeze_unet (bool): The backbone's ``freeze_unet``. Defaults to
            False.

    Returns:
        dict | None: A copy of ``lora`` (a plain dict), or None.

    Raises:
        TypeError: If ``lora`` is not a dict.
        ValueError: With ``freeze_unet=True``, unknown keys, or a rank that
            is not an integer >= 1.
    """
    if lora is None:
        return None
    fix = 'Fix: e.g. lora=dict(rank=8).'
    if not isinstance(lora, dict):
        raise TypeError(f'lora must be a dict of add_unet_lora arguments or '
                        f'None, got {lora!r}. {fix}')
    if freeze_unet:
        raise ValueError(
            'freeze_unet=True and lora are exclusive: LoRA already freezes '
            "the U-Net's base weights and trains only its adapters. Fix: "
            'drop freeze_unet for LoRA fine-tuning, or set lora=None for a '
            'frozen U-Net.')
    params = inspect.signature(add_unet_lora).parameters
    allowed = sorted(set(params) - {'unet'})
    unknown = sorted(set(lora) - set(allowed))
    if unknown:
        raise ValueError(
            f'Unknown lora keys {unknown}; allowed: {allowed}. {fix}')
    rank = lora.get('rank', params['rank'].default)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            f'lora rank must be an integer >= 1, got {rank!r}. {fix}')
    _require_peft()
    return dict(lora)


def _plain_keys_to_base_layer(module: nn.Module, state_dict: dict,
                              prefix: str, *args) -> None:
    """Load-state-dict pre-hook of a peft-wrapped layer: move a plain
    checkpoint's ``<layer>.weight``/``.bias`` to ``<layer>.base_layer.*``
    (torch and mmengine loaders both run it before reaching the child)."""
    base = module.base_layer
    for leaf in list(base._parameters) + list(base._buffers):
        plain, wrapped = prefix + leaf, f'{prefix}base_layer.{leaf}'
        if plain in state_dict and wrapped not in state_dict:
            state_dict[wrapped] = state_dict.pop(plain)


def lora_compatible_state_dict(unet: nn.Module,
                               state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map a plain U-Net state dict onto a LoRA-wrapped U-Net's keys.

    ``to_q.weight`` becomes ``to_q.base_layer.weight`` where peft wrapped the
    layer, and the adapters' own current tensors fill the ``lora_`` keys, so
    a strict load (e.g. ``copy_weights``) still catches any real mismatch.
    A U-Net without adapters gets ``state`` back unchanged.

    Args:
        unet (nn.Module): The (possibly LoRA-wrapped) U-Net.
        state (dict): Its pretrained weights in plain diffusers layout.

    Returns:
        dict: A state dict with ``unet``'s keys.
    """
    own = unet.state_dict()
    if not any('lora_' in k for k in own):
        return state
    out = {}
    for key, value in state.items():
        module, _, leaf = key.rpartition('.')
        wrapped = f'{module}.base_layer.{leaf}'
        out[wrapped if key not in own and wrapped in own else key] = value
    out.update({k: v for k, v in own.items() if 'lora_' in k})
    return out
