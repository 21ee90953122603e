"""Meta prompts: learned prompts instead of text, a learned timestep
embedding per refinement loop, recurrent refinement through the U-Net, and
features re-weighted by the prompts.

Data path: image -> VAE latents z0 -> loop k = 0..L-1: U-Net(z_k, t,
meta prompts) with time embedding + delta_k -> taps; z_{k+1} = z0 +
proj(finest tap_k) -> taps of the last loop -> per tap, prompt
re-weighting ``F + gamma * sum_n softmax_n(<F, P_n>) P_n`` -> tuple.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.models.conditioning import Conditioner
from mmdiff.models.text import TextAdapter
from mmdiff.registry import MODELS


class PromptReweight(nn.Module):
    """Re-weight a feature map by its affinity to the meta prompts.

    ``P = W prompts`` (``N x C``); per pixel ``a = softmax_n(<F, P_n> /
    sqrt(C))``; ``out = F + gamma * sum_n a_n P_n``, ``gamma`` per channel,
    zero at init (the backbone starts as plain VPD features).

    Args:
        prompt_dim (int): Prompt width ``D``.
        channels (int): Feature channels ``C``.
    """

    def __init__(self, prompt_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(prompt_dim, channels)
        self.gamma = nn.Parameter(torch.zeros(channels))

    def forward(self, feat: Tensor, prompts: Tensor) -> Tensor:
        keys = self.proj(prompts).to(feat.dtype)  # (N, C)
        logits = torch.einsum('bchw,nc->bnhw', feat, keys)
        attn = (logits / math.sqrt(feat.shape[1])).softmax(1)
        mixed = torch.einsum('bnhw,nc->bchw', attn, keys)
        return feat + self.gamma.to(feat.dtype)[:, None, None] * mixed


@MODELS.register_module()
class MetaPrompts(Conditioner):
    """``N`` learned meta prompts, the same for every image (a conditioner).

    Args:
        dim (int): Prompt width (the U-Net's ``cross_attention_dim``).
        num_prompts (int): ``N``. Defaults to 64.
        prompt_std (float): Init std of the prompts. Defaults to 0.02.
        text_adapter (bool): VPD's adapter on the prompts (redundant for
            learned prompts). Defaults to False.
        gamma_init (float): Initial adapter gate. Defaults to 1e-4.
        local_files_only (bool): From the backbone (unused).
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self, dim: int, num_prompts: int = 64,
                 prompt_std: float = 0.02, text_adapter: bool = False,
                 gamma_init: float = 1e-4, local_files_only: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(dim, local_files_only, init_cfg)
        self.num_prompts = num_prompts
        self.meta_prompts = nn.Parameter(
            torch.randn(num_prompts, self.dim) * prompt_std)
        self.text_adapter = TextAdapter(self.dim, gamma_init) \
            if text_adapter else None

    @property
    def num_tokens(self) -> int:
        """Meta prompts per image (= attention-map channels)."""
        return self.num_prompts

    def prompts(self) -> Tensor:
        """The meta prompts ``(N, D)``, through the adapter if any."""
        if self.text_adapter is None:
            return self.meta_prompts
        return self.text_adapter(self.meta_prompts)

    def forward(self, batch_size: int, class_ids: Optional[Tensor] = None,
                metainfo: Optional[Sequence[dict]] = None) -> Tensor:
        """The same N meta prompts for every image, ``(B, N, D)``."""
        return self.prompts()[None].expand(batch_size, -1, -1)


@MODELS.register_module()
class MetaPromptsVPD(DiffusionBackbone):
    """A diffusion backbone conditioned on learned meta prompts
    (:class:`MetaPrompts`), with recurrent refinement.

    Args:
        num_prompts (int): Meta prompts ``N``. Defaults to 64.
        num_loops (int): Passes through the U-Net (recurrent refinement);
            1 is a single pass. Defaults to 2.
        learned_timestep (bool): Add a learned vector (zero init) per loop
            to the U-Net's time embedding. Defaults to True.
        reweight (bool): Re-weight every output by the prompts
            (:class:`PromptReweight`). Defaults to True.
        prompt_std (float): Init std of the prompts. Defaults to 0.02.
        text_adapter (bool): VPD's adapter on the prompts. Defaults to
            False.
        gamma_init (float): Its initial gate. Defaults to 1e-4.
        use_attn (bool): Concatenate the N-channel prompt attention maps.
            Defaults to False.
        **kwargs: :class:`~mmdiff.models.backbones.DiffusionBackbone`
            arguments (not ``conditioner``: the prompts are it).
    """

    def __init__(self,
                 num_prompts: int = 64,
                 num_loops: int = 2,
                 learned_timestep: bool = True,
                 reweight: bool = True,
                 prompt_std: float = 0.02,
                 text_adapter: bool = False,
                 gamma_init: float = 1e-4,
                 use_attn: bool = False,
                 **kwargs) -> None:
        if num_loops < 1:
            raise ValueError(f'num_loops must be >= 1, got {num_loops}.')
        if 'conditioner' in kwargs:
            raise TypeError('MetaPromptsVPD is conditioned on its meta '
                            'prompts: drop conditioner= (set num_prompts).')
        super().__init__(
            use_attn=use_attn,
            conditioner=dict(type='MetaPrompts', num_prompts=num_prompts,
                             prompt_std=prompt_std,
                             text_adapter=text_adapter,
                             gamma_init=gamma_init),
            **kwargs)
        self.num_loops = num_loops
        self._loop = 0
        if num_loops > 1:
            if self.tap_strides[0] != self.vae_factor:
                raise ValueError(
                    'Recurrent refinement feeds the first tap back into the '
                    'latent: it must be at latent resolution (stride '
                    f'{self.vae_factor}), got stride {self.tap_strides[0]}.')
            self.refine_proj = nn.Conv2d(self.tap_channels[0],
                                         self.unet.config.in_channels, 1)
            nn.init.zeros_(self.refine_proj.weight)
            nn.init.zeros_(self.refine_proj.bias)
        self.time_delta = None
        if learned_timestep:
            dim = self.unet.time_embedding.linear_2.out_features
            self.time_delta = nn.Parameter(torch.zeros(num_loops, dim))
            self.unet.time_embedding.register_forward_hook(
                self._add_time_delta)
        self.reweight = nn.ModuleList(
            PromptReweight(self.cross_attention_dim, c)
            for c in self.output_channels()) if reweight else None

    def _add_time_delta(self, module, args, output: Tensor) -> Tensor:
        """Forward hook on ``unet.time_embedding``: + this loop's delta."""
        return output + self.time_delta[self._loop].to(output.dtype)

    def extract(self, latents: Tensor, cond: Tensor,
                out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Features of the last refinement loop, re-weighted."""
        start = self.add_noise(latents)
        latents = start
        try:
            for loop in range(self.num_loops):
                self._loop = loop
                feats, maps = self.run_unet(latents, cond)
                if loop < self.num_loops - 1:
                    first = feats[self.tap_paths[0]]
                    latents = start + self.refine_proj(first).to(start.dtype)
        finally:
            self._loop = 0
        outs = self.tap_outputs(feats, maps, out_hw)
        if self.reweight is None:
            return outs
        prompts = self.conditioner.prompts()
        return tuple(rw(f, prompts) for rw, f in zip(self.reweight, outs))
