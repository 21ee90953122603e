"""Meta Prompts as the source builds it (fudan-zvg/meta-prompts@5628dd9).

Data path (``segmentation/models/model.py`` ``MetaPromptsSeg.extract_feat``,
``depth/models_depth/model.py`` ``MetaPromptDepthEncoder.forward``):
image -> [NYU: bilinear resize to ``(h // 64 + resize_scale) * 64``] ->
VAE latents (posterior mode, unscaled, no noise) -> refinement step
k = 0..L-1: U-Net(z_k, free timestep vector t_k (1 x 1280) in place of the
time embedding, prompts P_k) -> taps; z_{k+1} = the U-Net's own ``out``
(``conv_norm_out`` + SiLU + ``conv_out``, shared by the steps) on the last
tap -> taps of the last step -> prompt-map head (einsum with the last
step's prompts) -> tuple.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmdiff.models.backbones import DiffusionBackbone
from mmdiff.registry import MODELS
from .prompt_heads import PromptDepthMaps, PromptLevelMaps

PROMPT_HEADS = dict(seg=PromptLevelMaps, depth=PromptDepthMaps)


class PromptAdapter(nn.Module):
    """The source's ``TextAdapterDepth`` (meta_prompts/models.py:295): a
    plain MLP ``fc(x)`` (no residual, no gate, unlike VPD's adapter).

    Args:
        dim (int): Prompt width.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, prompts: Tensor) -> Tensor:
        return self.fc(prompts)


class _NoTimeEmbedding(nn.Module):
    """Stands where ``unet.time_embedding`` was when the source deletes it
    (depth: ``del ...diffusion_model.time_embed``); the backbone's hook
    supplies the step's timestep vector."""

    def forward(self, t_emb: Tensor, *args) -> Tensor:
        return t_emb


@MODELS.register_module()
class MetaPromptsBackbone(DiffusionBackbone):
    """The Meta Prompts model of the source, on diffusers components.

    Args:
        num_prompts (int): Meta prompts per set (ADE20K 150, NYU 50).
            Defaults to 150.
        refine_steps (int): U-Net passes (``refine_step``; 3 in the source's
            configs). Defaults to 3.
        share_prompts (bool): One prompt set for every step (segmentation)
            or one per step (depth). Defaults to True.
        prompt_adapter (bool): Pass each step's prompts through its own
            :class:`PromptAdapter` (depth). Defaults to False.
        prompt_head (str): ``'seg'`` (:class:`PromptLevelMaps`: ``N``
            prompt maps per level at strides 4-32) or ``'depth'``
            (:class:`PromptDepthMaps`: one ``N``-channel map at stride 8).
            Defaults to 'seg'.
        deconv_filters (int): Deconv widths of the depth prompt head (the
            source: 32). Defaults to 32.
        delete_time_embed (bool): Remove ``unet.time_embedding`` (the depth
            source deletes ldm's ``time_embed``; the segmentation source
            keeps it, unused and frozen here). Defaults to False.
        resize_scale (int, optional): Resize inputs bilinearly to
            ``(h // d + resize_scale) * d`` (d = ``size_divisor``, 64 for
            SD) and the outputs back to ``h // stride`` (the depth source,
            ``--resize_scale 1``: 480 -> 512). None: mmdiff's padding.
            Defaults to None.
        **kwargs: :class:`DiffusionBackbone` arguments (``pretrained``,
            ``unet_cfg``, ``vae_cfg``, ...; not ``conditioner``: the
            prompts are the backbone's own). The source's latents are the
            unscaled posterior mode without noise (the defaults).
    """

    def __init__(self,
                 num_prompts: int = 150,
                 refine_steps: int = 3,
                 share_prompts: bool = True,
                 prompt_adapter: bool = False,
                 prompt_head: str = 'seg',
                 deconv_filters: int = 32,
                 delete_time_embed: bool = False,
                 resize_scale: Optional[int] = None,
                 **kwargs) -> None:
        if refine_steps < 1:
            raise ValueError(
                f'refine_steps must be >= 1, got {refine_steps}.')
        if prompt_head not in PROMPT_HEADS:
            raise ValueError(f'prompt_head must be one of '
                             f'{sorted(PROMPT_HEADS)}, got {prompt_head!r}.')
        if kwargs.get('conditioner') is not None:
            raise ValueError(
                'MetaPromptsBackbone holds the source\'s prompts itself (one '
                'set per refinement step with its own adapter, which a '
                'conditioner\'s single token set cannot express): drop '
                'conditioner.')
        kwargs.setdefault('use_attn', False)
        if kwargs['use_attn']:
            raise ValueError('MetaPromptsBackbone returns prompt maps; the '
                             'source runs without attention maps '
                             '(use_attn=False).')
        super().__init__(**kwargs)
        self.num_prompts = num_prompts
        self.refine_steps = refine_steps
        self.resize_scale = resize_scale
        dim = self.cross_attention_dim
        last = f'up_blocks.{len(self.unet.up_blocks) - 1}'
        if refine_steps > 1 and self.tap_paths[0] != last:
            raise ValueError(
                'Refinement feeds the U-Net output of the last up block '
                f'({last!r}) back; it must be the first tap, got '
                f'{self.tap_paths[0]!r} (use the default taps).')
        # the source: nn.Parameter(torch.randn(...)) for prompts and t_k
        time_dim = self.unet.time_embedding.linear_2.out_features
        self.timesteps = nn.ParameterList(
            nn.Parameter(torch.randn(1, time_dim))
            for _ in range(refine_steps))
        self.prompts = nn.ParameterList(
            nn.Parameter(torch.randn(num_prompts, dim))
            for _ in range(1 if share_prompts else refine_steps))
        self.adapters = nn.ModuleList(
            PromptAdapter(dim) for _ in range(len(self.prompts))
        ) if prompt_adapter else None
        self.prompt_head = PROMPT_HEADS[prompt_head](
            self.tap_channels, dim, deconv_filters=deconv_filters)
        if delete_time_embed:
            self.unet.time_embedding = _NoTimeEmbedding()
        self.unet.time_embedding.register_forward_hook(self._step_timestep)
        self._step = 0
        # conv_norm_out/conv_out make the next latent (trained); the time
        # embedding's output is replaced (no gradient reaches it)
        unet_out = ('conv_norm_out.', 'conv_out.')
        self.unused_unet_params = [
            n for n in self.unused_unet_params
            if refine_steps == 1 or not n.startswith(unet_out)
        ] + [n for n, _ in self.unet.named_parameters()
             if n.startswith('time_embedding.')]
        if refine_steps > 1 and not self.freeze_unet and self.lora is None:
            for name in unet_out:
                self.unet.get_submodule(name[:-1]).requires_grad_(True)
        self._freeze_stages()

    # ------------------------------------------------------------------
    # Channels and strides
    # ------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return self.num_prompts

    def output_channels(self) -> Tuple[int, ...]:
        return (self.num_prompts, ) * len(self.prompt_head.strides(
            self.tap_strides))

    @property
    def feature_info(self) -> List[dict]:
        """One entry per prompt map (strides of the prompt head)."""
        if self._feature_info is None:
            self._feature_info = [
                dict(num_chs=self.num_prompts, reduction=s,
                     module=f'prompt_head.{i}')
                for i, s in enumerate(
                    self.prompt_head.strides(self.tap_strides))
            ]
        return self._feature_info

    # ------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------
    def forward(self, inputs, *args, **kwargs) -> Tuple[Tensor, ...]:
        """:meth:`DiffusionBackbone.forward`, with the depth source's
        resize around it when ``resize_scale`` is set."""
        if self.resize_scale is None:
            return super().forward(inputs, *args, **kwargs)
        images = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
        h, w = images.shape[-2:]
        div = self.size_divisor
        size = ((h // div + self.resize_scale) * div,
                (w // div + self.resize_scale) * div)
        resized = F.interpolate(images, size=size, mode='bilinear',
                                align_corners=False)
        if isinstance(inputs, (tuple, list)):
            resized = (resized, *inputs[1:])
        outs = super().forward(resized, *args, **kwargs)
        return tuple(
            F.interpolate(o, size=(h // info['reduction'],
                                   w // info['reduction']),
                          mode='bilinear', align_corners=False)
            for o, info in zip(outs, self.feature_info))

    def step_prompts(self, step: int, batch_size: int) -> Tensor:
        """Prompts of refinement step ``step``, ``(B, N, D)``."""
        index = min(step, len(self.prompts) - 1)
        prompts = self.prompts[index]
        if self.adapters is not None:
            prompts = self.adapters[index](prompts)
        return prompts[None].expand(batch_size, -1, -1)

    def condition(self, batch_size: int, *args, **kwargs) -> Tensor:
        """The first step's prompts (the base class's hook)."""
        return self.step_prompts(0, batch_size)

    def _step_timestep(self, module, args, output: Tensor) -> Tensor:
        """Forward hook on ``unet.time_embedding``: the step's free
        timestep vector replaces the embedding (the source's U-Net forward
        takes ``emb = timesteps``)."""
        t = self.timesteps[self._step]
        return t.to(output.dtype).expand(output.shape[0], -1)

    def unet_out(self, hidden: Tensor) -> Tensor:
        """The U-Net's own output layers (ldm ``out``) on the last up
        block's output: the next step's latent."""
        unet = self.unet
        return unet.conv_out(unet.conv_act(unet.conv_norm_out(hidden)))

    def extract(self, latents: Tensor, cond: Tensor,
                out_hw: Tuple[int, int]) -> Tuple[Tensor, ...]:
        """The refinement loop, then the prompt maps of the last step."""
        batch = latents.shape[0]
        try:
            for step in range(self.refine_steps):
                if step > 0:
                    latents = self.unet_out(feats[self.tap_paths[0]])
                    cond = self.step_prompts(step, batch).to(cond.dtype)
                self._step = step
                feats, maps = self.run_unet(latents, cond)
        finally:
            self._step = 0
        outs = self.tap_outputs(feats, maps, out_hw)
        return self.prompt_head(outs, cond)
