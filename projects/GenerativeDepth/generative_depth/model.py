"""One-step generative dense prediction (Lotus / GenPercept / Marigold
style) as an mmseg depth segmentor.

The image latent (optionally concatenated with a noisy target latent, as
Marigold and Lotus-G do) goes through a diffusers ``UNet2DConditionModel``
at one fixed timestep; its output is taken as the target's latent (x0 /
"direct" prediction) and decoded by the frozen VAE decoder.
"""
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import BaseSegmentor, DepthEstimator
from mmengine.structures import PixelData
from torch import Tensor, nn

from mmdiff.models.diffusion.sd_core import SDCore, check_choice
from mmdiff.registry import MODELS
from .targets import align_affine, depth_to_normals, normalize_depth

INPUT_MODES = ('direct', 'concat_noise')
CONV_IN_INITS = ('duplicate_halve', 'zero')
TARGETS = ('depth', 'normal')
LOSSES = ('latent_mse', 'pixel_mse')


@MODELS.register_module()
class GenerativeDepth(SDCore, BaseSegmentor):
    """U-Net as a one-step predictor of the depth (or normal) latent.

    Args:
        pretrained (str, optional): Diffusers folder, hub id or single file
            (mmdiff's loading code); None builds from ``unet_cfg``/
            ``vae_cfg`` at random. Defaults to None.
        unet_cfg (dict, optional): ``UNet2DConditionModel`` config (with
            ``in_channels`` of the pretrained U-Net, i.e. the latent
            channels). Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config. Defaults to None.
        original_config (str | dict, optional): ldm yaml of a single file.
        local_files_only (bool): Never touch the network. Defaults to False.
        vae_weights (str, optional): A stand-alone ``AutoencoderKL`` (encoder
            and decoder) replacing ``pretrained``'s, e.g. the demos' VAE.
        input_mode (str): ``'direct'``: the U-Net sees the image latent only
            (Lotus-D, GenPercept); ``'concat_noise'``: image latent + noisy
            target latent (Marigold, Lotus-G), first conv widened. Defaults
            to ``'direct'``.
        conv_in_init (str): Widened conv_in: ``'duplicate_halve'``
            (Marigold, Lotus-G: weights repeated and halved) or ``'zero'``
            (new channels zero). Defaults to ``'duplicate_halve'``.
        timestep (int): The fixed timestep (Lotus: 999). Defaults to 999.
        target (str): ``'depth'`` or ``'normal'``. Defaults to ``'depth'``.
        depth_mode (str): ``'affine'`` (affine-invariant, aligned to the
            ground truth for evaluation) or ``'metric'``. Defaults to
            ``'affine'``.
        min_depth (float): Smallest valid depth. Defaults to 1e-3.
        max_depth (float): Largest valid depth (metric scale). Defaults to 10.
        quantile (float): Affine normalisation quantile. Defaults to 0.02.
        loss (str): ``'latent_mse'`` (Lotus, Marigold) or ``'pixel_mse'``
            (GenPercept, through the frozen decoder). Defaults to
            ``'latent_mse'``.
        normal_focal (float, optional): Focal length (pixels) used to derive
            normals from depth when a sample carries no ``gt_normal_map``.
        scale_latents (bool): Multiply latents by the VAE's scaling factor
            (all sources do). Defaults to True.
        prompt_embeds (str | Tensor, optional): ``(N, D)`` conditioning, e.g.
            the text encoder's embedding of the empty prompt (the sources'),
            or a ``.pt`` file of it; None: one all-zero token (mmdiff's null
            prompt). Defaults to None.
        noise_seed (int): Seed of the inference noise (``'concat_noise'``).
        grad_checkpointing (bool): U-Net gradient checkpointing.
        data_preprocessor, train_cfg, test_cfg, init_cfg: As mmseg's.
            ``test_cfg.align`` (default True) aligns affine predictions to
            the ground truth by least squares when it is available.
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 unet_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 original_config: Optional[Union[str, dict]] = None,
                 local_files_only: bool = False,
                 vae_weights: Optional[str] = None,
                 input_mode: str = 'direct',
                 conv_in_init: str = 'duplicate_halve',
                 timestep: int = 999,
                 target: str = 'depth',
                 depth_mode: str = 'affine',
                 min_depth: float = 1e-3,
                 max_depth: float = 10.,
                 quantile: float = 0.02,
                 loss: str = 'latent_mse',
                 normal_focal: Optional[float] = None,
                 scale_latents: bool = True,
                 prompt_embeds: Optional[Union[str, Tensor]] = None,
                 noise_seed: int = 0,
                 grad_checkpointing: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        check_choice('input_mode', input_mode, INPUT_MODES)
        check_choice('conv_in_init', conv_in_init, CONV_IN_INITS)
        check_choice('target', target, TARGETS)
        check_choice('depth_mode', depth_mode, ('affine', 'metric'))
        check_choice('loss', loss, LOSSES)
        if not 0 <= timestep < 1000:
            raise ValueError(f'timestep must be in [0, 999], got {timestep}.')
        self.input_mode = input_mode
        self.conv_in_init = conv_in_init
        self.timestep = timestep
        self.target = target
        self.depth_mode = depth_mode
        self.min_depth, self.max_depth = min_depth, max_depth
        self.quantile = quantile
        self.loss_type = loss
        self.normal_focal = normal_focal
        self.noise_seed = noise_seed
        self.train_cfg = train_cfg or {}
        self.test_cfg = test_cfg or {}
        self.align_corners = False  # DepthEstimator.postprocess_result

        self.build_sd(pretrained, unet_cfg, vae_cfg, original_config,
                      local_files_only, vae_weights=vae_weights,
                      decoder=True, grad_checkpointing=grad_checkpointing,
                      scale_latents=scale_latents)
        if self.unet.config.in_channels != self.latent_channels:
            raise ValueError(
                f'unet in_channels ({self.unet.config.in_channels}) must '
                f'equal the VAE latent channels ({self.latent_channels}): '
                'give the pretrained U-Net\'s config; input_mode='
                "'concat_noise' widens conv_in itself.")
        self._widen_conv_in()
        cross = self.cross_attention_dim
        if isinstance(prompt_embeds, str):
            prompt_embeds = torch.load(prompt_embeds, map_location='cpu',
                                       weights_only=True)
        if prompt_embeds is None:
            prompt_embeds = torch.zeros(1, cross)
        prompt_embeds = torch.as_tensor(prompt_embeds).float().reshape(
            -1, prompt_embeds.shape[-1])
        if prompt_embeds.shape[-1] != cross:
            raise ValueError(f'prompt_embeds width {prompt_embeds.shape[-1]}'
                             f' != the U-Net cross_attention_dim {cross}.')
        self.register_buffer('prompt_embeds', prompt_embeds, persistent=False)
        self.freeze_sd()

    # ------------------------------------------------------------------
    def _widen_conv_in(self) -> None:
        """Widen conv_in for image latent + noisy target latent."""
        if self.input_mode == 'direct':
            return
        old = self.unet.conv_in
        new = nn.Conv2d(old.in_channels * 2, old.out_channels,
                        old.kernel_size, old.stride, old.padding)
        with torch.no_grad():
            if self.conv_in_init == 'duplicate_halve':
                new.weight.copy_(old.weight.repeat(1, 2, 1, 1) / 2)
            else:
                new.weight.zero_()
                new.weight[:, :old.in_channels] = old.weight
            new.bias.copy_(old.bias)
        self.unet.conv_in = new
        self.unet.register_to_config(in_channels=new.in_channels)

    def init_weights(self) -> None:
        """Pretrained U-Net + VAE (conv_in widened after loading)."""
        if not self._is_init:
            narrow = self.pretrained is not None and \
                self.input_mode != 'direct'
            if narrow:  # load into the original shape
                wide = self.unet.conv_in
                self.unet.conv_in = nn.Conv2d(
                    self.latent_channels, wide.out_channels,
                    wide.kernel_size, wide.stride, wide.padding)
            self.load_sd_weights()
            if narrow:
                self._widen_conv_in()
        super().init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> 'GenerativeDepth':
        super().train(mode)
        self.freeze_sd()
        return self

    # ------------------------------------------------------------------
    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        """The image latent (the U-Net's only visual input)."""
        return [self.encode(inputs)]

    def predict_latent(self, inputs: Tensor,
                       target_latent: Optional[Tensor] = None) -> Tensor:
        """One U-Net step: the predicted target latent.

        Args:
            inputs (Tensor): Images in [-1, 1], sides multiples of
                ``size_divisor``.
            target_latent (Tensor, optional): Ground-truth latent, noised at
                ``timestep`` for ``'concat_noise'`` training; at inference
                the noisy half is pure Gaussian noise (seeded).
        """
        lat = self.encode(inputs)
        if self.input_mode == 'concat_noise':
            if target_latent is not None:
                noise = torch.randn_like(target_latent)
                t = torch.full((lat.shape[0], ), self.timestep,
                               device=lat.device, dtype=torch.long)
                noisy = self.scheduler.add_noise(target_latent, noise, t)
            else:
                gen = torch.Generator(lat.device).manual_seed(self.noise_seed)
                noisy = torch.randn(lat.shape, generator=gen,
                                    device=lat.device, dtype=lat.dtype)
            lat = torch.cat([lat, noisy], dim=1)
        t = torch.full((lat.shape[0], ), self.timestep, device=lat.device,
                       dtype=torch.long)
        cond = self.prompt_embeds[None].expand(lat.shape[0], -1, -1)
        return self.unet(lat, t, encoder_hidden_states=cond.to(lat.dtype)
                         ).sample

    def _pad(self, inputs: Tensor) -> tuple:
        h, w = inputs.shape[-2:]
        d = self.size_divisor
        ph, pw = -h % d, -w % d
        return F.pad(inputs, (0, pw, 0, ph)), (h, w)

    def encode_decode(self, inputs: Tensor,
                      batch_img_metas: Optional[List[dict]] = None
                      ) -> Tensor:
        """Predicted map: depth/relative depth ``(B, 1, H, W)`` or unit
        normals ``(B, 3, H, W)``."""
        padded, (h, w) = self._pad(inputs)
        out = self.decode(self.predict_latent(padded))[..., :h, :w]
        if self.target == 'normal':
            return F.normalize(out.clamp(-1, 1), dim=1, eps=1e-6)
        x = out.mean(dim=1, keepdim=True).clamp(-1, 1)
        if self.depth_mode == 'metric':
            return ((x + 1) / 2 * self.max_depth).clamp(min=self.min_depth)
        return (x + 1) / 2  # relative; aligned in predict()

    def _forward(self, inputs: Tensor, data_samples=None) -> Tensor:
        return self.encode_decode(inputs)

    # ------------------------------------------------------------------
    def _targets(self, data_samples) -> tuple:
        """Normalised target map ``(B, 3, H, W)`` in [-1, 1] and its mask."""
        depth = torch.stack([s.gt_depth_map.data for s in data_samples])
        valid = (depth > self.min_depth) & (depth <= self.max_depth)
        if self.target == 'depth':
            norm = normalize_depth(depth.float(), valid, self.depth_mode,
                                   self.max_depth, self.quantile)
            return norm.repeat(1, 3, 1, 1), valid
        if all('gt_normal_map' in s for s in data_samples):
            normals = torch.stack(
                [s.gt_normal_map.data for s in data_samples]).float()
            valid = normals.norm(dim=1, keepdim=True) > 0.5
        else:  # derived from the depth, as Lotus's utils/depth2normal.py
            normals = depth_to_normals(depth.float(), self.normal_focal)
        return torch.where(valid, normals, torch.zeros_like(normals)), valid

    def loss(self, inputs: Tensor, data_samples) -> dict:
        """Latent-space or pixel-space MSE on the valid pixels."""
        padded, (h, w) = self._pad(inputs)
        target, valid = self._targets(data_samples)
        target = F.pad(target, (0, padded.shape[-1] - w,
                                0, padded.shape[-2] - h), value=0.)
        valid = F.pad(valid, (0, padded.shape[-1] - w,
                              0, padded.shape[-2] - h), value=False)
        target_latent = self.encode(target.to(padded.dtype))
        pred = self.predict_latent(padded, target_latent)
        if self.loss_type == 'latent_mse':
            # Lotus: a latent pixel counts when its whole patch is valid
            f = self.vae_factor
            mask = -F.max_pool2d(-valid.float(), f, f) > 0.5
            mask = mask.expand_as(pred)
            loss = F.mse_loss(pred[mask].float(), target_latent[mask].float())
        else:
            out = self.decode(pred)
            if self.target == 'depth':
                out, target = out.mean(1, keepdim=True), target[:, :1]
            mask = valid.expand_as(out)
            loss = F.mse_loss(out[mask].float(), target[mask].float())
        if not mask.any():
            loss = pred.sum() * 0.
        return {f'loss_{self.loss_type}': loss}

    def predict(self, inputs: Tensor, data_samples=None):
        """Depth in ``pred_depth_map`` (mmseg's DepthMetric reads it) or unit
        normals in ``pred_normal_map``."""
        out = self.encode_decode(inputs)
        if self.target == 'normal':
            samples = DepthEstimator.postprocess_result(self, out,
                                                        data_samples)
            for s in samples:
                s.set_data({'pred_normal_map': PixelData(
                    data=F.normalize(s.pred_depth_map.data, dim=0))})
                del s.pred_depth_map
            return samples
        samples = DepthEstimator.postprocess_result(self, out, data_samples)
        if self.depth_mode == 'affine' and self.test_cfg.get('align', True):
            for s in samples:
                if 'gt_depth_map' not in s:
                    continue
                gt = s.gt_depth_map.data.to(s.pred_depth_map.data)
                valid = (gt > self.min_depth) & (gt <= self.max_depth)
                aligned = align_affine(s.pred_depth_map.data, gt, valid)
                s.pred_depth_map.data = aligned.clamp(self.min_depth,
                                                      self.max_depth)
        return samples
