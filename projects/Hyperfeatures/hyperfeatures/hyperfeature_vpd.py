"""VPD features from several (timestep, seed) U-Net passes, mixed by
learned softmax weights (Diffusion Hyperfeatures, Luo et al. 2023).

Data path: image -> VAE latents (once) -> for each pass p = (t_p, s_p):
noise at t_p with seed s_p -> U-Net at t_p -> VPD taps (+ maps) ->
optional per-tap bottleneck 1x1 conv (shared across passes) -> per tap i,
``sum_p softmax(w_i)_p * feat_{p,i}`` -> tuple of features.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmdiff.models.backbones import VPD
from mmdiff.registry import MODELS


@MODELS.register_module()
class HyperfeatureVPD(VPD):
    """VPD with multi-timestep / noise-ensemble features and learned mixing.

    Args:
        timesteps (Sequence[int]): Timesteps of the passes.
            Defaults to (1, 100, 250).
        seeds (Sequence[int]): Noise seeds; every (timestep, seed) pair is
            one U-Net pass. With ``noise='random'`` the seeds only count
            the draws. Defaults to (0, ).
        noise (str): ``'seeded'`` (same noise for a seed at every forward),
            ``'random'`` or ``'none'`` (timesteps only). Defaults to
            'seeded'.
        bottleneck (int, optional): Project every tap to this many channels
            with a 1x1 conv shared by the passes (Hyperfeatures' bottleneck
            layers) before mixing. None: no projection, VPD's channels.
            Defaults to None.
        timestep (int, optional): VPD's single timestep, e.g. inherited
            from a VPD config: it must be one of ``timesteps`` (which
            decide). Defaults to None.
        **kwargs: :class:`VPD` arguments.
    """

    def __init__(self,
                 timesteps: Sequence[int] = (1, 100, 250),
                 seeds: Sequence[int] = (0, ),
                 noise: str = 'seeded',
                 bottleneck: Optional[int] = None,
                 timestep: Optional[int] = None,
                 **kwargs) -> None:
        if not timesteps or not seeds:
            raise ValueError('HyperfeatureVPD needs at least one timestep '
                             'and one seed.')
        if timestep is not None and timestep not in timesteps:
            raise ValueError(
                f'timestep={timestep} is not one of timesteps='
                f'{tuple(timesteps)}: HyperfeatureVPD runs the U-Net at '
                'each of timesteps. Fix: add it to timesteps, or drop '
                'timestep (model.backbone.timestep=None).')
        super().__init__(noise=noise, timestep=int(timesteps[0]), **kwargs)
        self.passes: List[Tuple[int, int]] = [(int(t), int(s))
                                              for t in timesteps
                                              for s in seeds]
        vpd_channels = super().output_channels()
        # per-(pass, tap) mixing logits; zeros = uniform average
        self.mix_logits = nn.Parameter(
            torch.zeros(len(vpd_channels), len(self.passes)))
        self.bottleneck_channels = bottleneck
        self.bottleneck = None
        if bottleneck is not None:
            self.bottleneck = nn.ModuleList(
                nn.Conv2d(c, bottleneck, 1) for c in vpd_channels)
        print_log(self.cost_summary(), logger='current')

    def output_channels(self) -> Tuple[int, ...]:
        """VPD's channels, or ``bottleneck`` for every tap."""
        if self.bottleneck_channels is None:
            return super().output_channels()
        return (self.bottleneck_channels, ) * len(self.tap_paths)

    @property
    def num_passes(self) -> int:
        """U-Net forwards per image."""
        return len(self.passes)

    def cost_summary(self) -> str:
        """The cost line printed at build time."""
        return (f'HyperfeatureVPD: {self.num_passes} passes (timestep, seed) '
                f'= {self.passes} -> {self.num_passes} x the U-Net forward '
                '(and backward) of VPD per image; the VAE encodes once.')

    def mix_weights(self) -> Tensor:
        """``(num_taps, num_passes)`` softmax weights."""
        return self.mix_logits.softmax(-1)

    def extract(self, latents: Tensor, cond: Tensor,
                out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """Mixed features of all passes over the same clean latents."""
        weights = self.mix_weights()
        mixed = None
        for p, (timestep, seed) in enumerate(self.passes):
            noisy = self.add_noise(latents, timestep, seed)
            feats = self.tap_outputs(*self.run_unet(noisy, cond, timestep),
                                     out_hw)
            if self.bottleneck is not None:
                feats = [proj(f) for proj, f in zip(self.bottleneck, feats)]
            terms = [weights[i, p] * f for i, f in enumerate(feats)]
            mixed = terms if mixed is None else [
                m + t for m, t in zip(mixed, terms)
            ]
        return tuple(mixed)
