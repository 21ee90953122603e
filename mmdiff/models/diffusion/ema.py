"""ldm's EMA copy of the U-Net in a Stable Diffusion single file.

A full SD training file (``v1-5-pruned.ckpt``) holds the raw U-Net
(``model.diffusion_model.*``) and the copy ldm's ``LitEma`` keeps of it
(``model_ema.*``: each parameter of ``LatentDiffusion.model`` under its name
without dots, plus the ``decay``/``num_updates`` counters). The EMA-only
file VPD starts from (``v1-5-pruned-emaonly.ckpt``) stores the EMA weights
as ``model.diffusion_model.*``. :func:`take_unet_ema` turns the first into
the second, so that both give the same start.
"""
from typing import Dict, List, Tuple

SD_UNET = 'model.diffusion_model.'
EMA = 'model_ema.'
EMA_COUNTERS = frozenset({'model_ema.decay', 'model_ema.num_updates'})


def ema_key(key: str) -> str:
    """LitEma's name for an SD U-Net key:
    ``model.diffusion_model.input_blocks.0.0.weight`` ->
    ``model_ema.diffusion_modelinput_blocks00weight``."""
    return EMA + key[len('model.'):].replace('.', '')


def ema_entries(state: dict) -> List[str]:
    """The EMA copy's weight keys (counters excluded)."""
    return [k for k in state if k.startswith(EMA) and k not in EMA_COUNTERS]


def take_unet_ema(state: dict) -> Tuple[Dict, List[str], List[str]]:
    """``state`` with its EMA U-Net as ``model.diffusion_model.*`` and no
    ``model_ema.*`` keys (what the EMA-only file holds).

    Returns:
        tuple[dict, list[str], list[str]]: the new state (``state`` itself
        when it has no EMA copy), the U-Net keys without an EMA entry and
        the EMA entries of no U-Net key; when either list is not empty the
        state is returned unchanged.
    """
    shadow = set(ema_entries(state))
    if not shadow:
        return state, [], []
    unet = [k for k in state if k.startswith(SD_UNET)]
    missing = [k for k in unet if ema_key(k) not in shadow]
    extra = sorted(shadow - {ema_key(k) for k in unet})
    if missing or extra:
        return state, missing, extra
    out = {k: (state[ema_key(k)] if k.startswith(SD_UNET) else v)
           for k, v in state.items() if not k.startswith(EMA)}
    return out, [], []
