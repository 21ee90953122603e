"""Denoising-diffusion (pre)training of a Stable-Diffusion-shaped U-Net.

The objective Stable Diffusion was trained with, as diffusers'
``examples/text_to_image/train_text_to_image.py`` runs it, driven by an
mmengine config: image -> frozen VAE encoder (posterior sample or mode) ->
latents x the VAE's ``scaling_factor`` -> noise from diffusers'
``DDPMScheduler`` at a random timestep -> U-Net prediction of the noise
(``epsilon``) or of the velocity (``v_prediction``, target from the
scheduler's ``get_velocity``) -> MSE, optionally weighted by min-SNR-gamma
(diffusers' ``compute_snr``). Conditioning is a null prompt (one all-zero
token, the token the mmdiff backbones give a text-free U-Net), a learned
token per class, or the image's caption through a frozen CLIP text encoder
(its last hidden state, padded to 77 tokens, as SD trains; captions dropped
to the empty prompt with probability ``caption_dropout``, diffusers'
``--proportion_empty_prompts``).

Labels are never read (but for ``conditioning='class'``/``'caption'``: the
data sample's ``class_id``/``caption``): any data set whose
pipeline packs ``inputs`` feeds it (an image folder, mmseg or mmdet sets).
The trained U-Net goes to the backbones through
:class:`mmdiff.engine.DiffusersExportHook` (a diffusers folder for
``pretrained=``).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from mmdiff.models.diffusion.sd_core import SDCore, check_choice
from mmdiff.models.text.caption_encoder import (batch_captions,
                                                build_caption_encoder)
from mmdiff.registry import MODELS

PREDICTION_TYPES = ('epsilon', 'v_prediction')


@MODELS.register_module()
class DiffusionPretrainer(SDCore, BaseModel):
    """Train a diffusers U-Net with the denoising objective.

    Args:
        pretrained (str, optional): Diffusers folder, hub id or SD single
            file to continue training (domain adaptation). None trains from
            ``unet_cfg``/``vae_cfg`` (random U-Net). Defaults to None.
        unet_cfg (dict, optional): ``UNet2DConditionModel`` config when
            ``pretrained`` is None. Defaults to None.
        vae_cfg (dict, optional): ``AutoencoderKL`` config when
            ``pretrained`` is None. Defaults to None.
        vae_weights (str, optional): A stand-alone ``AutoencoderKL`` folder
            or hub id loaded after ``pretrained`` (e.g. the demos' VAE).
            Defaults to None.
        unet_weights (str, optional): A U-Net state dict file loaded after
            ``pretrained``. Defaults to None.
        original_config (str | dict, optional): ldm yaml of a single file.
            Defaults to None.
        local_files_only (bool): Never touch the network. Defaults to False.
        prediction_type (str): ``'epsilon'`` or ``'v_prediction'``. Defaults
            to 'epsilon'.
        latent_mode (str): ``'sample'`` (as SD trains) or ``'mode'`` of the
            VAE posterior. Defaults to 'sample'.
        scaling_factor (float, optional): Latent scale. None: the VAE
            config's ``scaling_factor`` (SD1: 0.18215). A value given here
            is written into the VAE's config, so the exported folder carries
            it. Defaults to None.
        scheduler (dict, optional): ``DDPMScheduler`` arguments over the
            schedule of ``pretrained`` (a diffusers folder's ``scheduler/``)
            or SD's (:data:`~mmdiff.models.diffusion.sd_core.SD_SCHEDULER`).
            Defaults to None.
        conditioning (str): ``'none'`` (null prompt: one all-zero token),
            ``'class'`` (a learned token per class, from the data sample's
            metainfo ``class_id``) or ``'caption'`` (the data sample's
            metainfo ``caption`` through a frozen CLIP text encoder).
            Defaults to 'none'.
        num_classes (int, optional): Classes for ``conditioning='class'``.
            Defaults to None.
        text_encoder (str, optional): With ``conditioning='caption'``: a
            CLIP text encoder folder, a Stable Diffusion folder
            (``text_encoder/`` + ``tokenizer/``) or a hub id. None: the one
            of ``pretrained`` (a diffusers folder or hub id). Defaults to
            None.
        caption_dropout (float): Probability that a caption is replaced by
            the empty prompt (diffusers' ``proportion_empty_prompts``; 0.1
            is usual for classifier-free guidance later). Defaults to 0.
        snr_gamma (float, optional): Min-SNR-gamma loss weighting (Hang et
            al. 2023; diffusers recommends 5.0). None: plain MSE. Defaults
            to None.
        lora (dict, optional): LoRA on the U-Net (peft), e.g.
            ``dict(rank=8)``; only the adapters train. Defaults to None.
        grad_checkpointing (bool): diffusers gradient checkpointing in the
            U-Net. Defaults to False.
        amp_dtype (str, optional): ``'bfloat16'``/``'float16'`` autocast of
            the VAE and U-Net (for CPUs; on GPUs use mmengine's
            ``AmpOptimWrapper``). Defaults to None.
        data_preprocessor (dict, optional): Defaults to mmengine's
            ``ImgDataPreprocessor`` mapping 8-bit BGR images to RGB in
            [-1, 1], the VAE's range.
        init_cfg (dict, optional): Defaults to None.
    """

    def __init__(self,
                 pretrained: Optional[str] = None,
                 unet_cfg: Optional[dict] = None,
                 vae_cfg: Optional[dict] = None,
                 vae_weights: Optional[str] = None,
                 unet_weights: Optional[str] = None,
                 original_config: Optional[Union[str, dict]] = None,
                 local_files_only: bool = False,
                 prediction_type: str = 'epsilon',
                 latent_mode: str = 'sample',
                 scaling_factor: Optional[float] = None,
                 scheduler: Optional[dict] = None,
                 conditioning: str = 'none',
                 num_classes: Optional[int] = None,
                 text_encoder: Optional[str] = None,
                 caption_dropout: float = 0.0,
                 snr_gamma: Optional[float] = None,
                 lora: Optional[dict] = None,
                 grad_checkpointing: bool = False,
                 amp_dtype: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type='ImgDataPreprocessor', mean=[127.5] * 3,
                std=[127.5] * 3, bgr_to_rgb=True)
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        check_choice('prediction_type', prediction_type, PREDICTION_TYPES)
        check_choice('conditioning', conditioning,
                     ('none', 'class', 'caption'))
        if snr_gamma is not None and not snr_gamma > 0:
            raise ValueError(f'snr_gamma must be > 0 or None, got '
                             f'{snr_gamma!r} (diffusers recommends 5.0).')
        self.prediction_type = prediction_type
        self.snr_gamma = snr_gamma
        self.build_sd(pretrained, unet_cfg, vae_cfg, original_config,
                      local_files_only, unet_weights, vae_weights,
                      decoder=True, lora=lora,
                      grad_checkpointing=grad_checkpointing,
                      latent_mode=latent_mode, scale_latents=True,
                      amp_dtype=amp_dtype,
                      scheduler=dict(scheduler or {},
                                     prediction_type=prediction_type),
                      check_unet=_check_tokens_only)
        if scaling_factor is not None:
            self.vae.register_to_config(scaling_factor=float(scaling_factor))
        self.freeze_sd()
        self.conditioning = conditioning
        self.class_embed = None
        if conditioning == 'class':
            if not isinstance(num_classes, int) or num_classes < 1:
                raise ValueError(
                    "conditioning='class' needs num_classes (an int >= 1), "
                    f'got {num_classes!r}.')
            self.class_embed = nn.Embedding(num_classes,
                                            self.cross_attention_dim)
        if not 0 <= caption_dropout <= 1:
            raise ValueError(f'caption_dropout must be in [0, 1], got '
                             f'{caption_dropout!r}.')
        if caption_dropout and conditioning != 'caption':
            raise ValueError("caption_dropout needs conditioning='caption'.")
        self.caption_dropout = float(caption_dropout)
        self.text_encoder = None
        if conditioning == 'caption':
            self.text_encoder = build_caption_encoder(
                text_encoder, pretrained, self.cross_attention_dim,
                local_files_only)
        elif text_encoder is not None:
            raise ValueError("text_encoder is used with conditioning="
                             f"'caption' only, got conditioning="
                             f'{conditioning!r}.')

    def init_weights(self) -> None:
        """Load ``pretrained`` / ``unet_weights`` / ``vae_weights``, then
        apply ``init_cfg`` if any (diffusers modules init themselves)."""
        self.load_sd_weights()  # vae_weights: weights only, config kept
        if self.text_encoder is not None:
            self.text_encoder.load_weights()
        if self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> 'DiffusionPretrainer':
        """Set training mode; the VAE stays frozen and in eval."""
        super().train(mode)
        self.vae.eval()
        return self

    # ------------------------------------------------------------------
    def condition(self, batch_size: int,
                  class_ids: Optional[Tensor] = None,
                  device: Optional[torch.device] = None,
                  captions: Optional[Sequence[str]] = None) -> Tensor:
        """Encoder hidden states: ``(B, 1, D)`` the null token or a class's;
        ``(B, 77, D)`` the text encoder's output for the captions.

        Args:
            batch_size (int): B.
            class_ids (Tensor, optional): ``(B, )`` class indices, needed
                with ``conditioning='class'``. Defaults to None.
            device (torch.device, optional): Defaults to the U-Net's.
            captions (Sequence[str], optional): B captions, needed with
                ``conditioning='caption'`` ('' is the empty prompt).
                Defaults to None.
        """
        device = device or self.unet.device
        if self.text_encoder is not None:
            if captions is None or len(captions) != batch_size:
                raise ValueError(
                    f"conditioning='caption' needs {batch_size} captions, "
                    f'got {captions!r}.')
            return self.text_encoder(captions, device).to(self.unet.dtype)
        if self.class_embed is None:
            return torch.zeros(batch_size, 1, self.cross_attention_dim,
                               device=device, dtype=self.unet.dtype)
        if class_ids is None:
            raise ValueError("conditioning='class' needs a class_id per "
                             'image (data sample metainfo class_id).')
        return self.class_embed(class_ids.to(device))[:, None]

    def _class_ids(self, data_samples, device) -> Optional[Tensor]:
        if self.class_embed is None:
            return None
        if not data_samples or any(
                'class_id' not in s.metainfo for s in data_samples):
            raise ValueError(
                "conditioning='class' needs 'class_id' in every data "
                "sample's metainfo: use mmdiff.ImageFolderDataset(classes="
                "'subfolders') and add 'class_id' to the packer's meta_keys.")
        return torch.tensor([int(s.metainfo['class_id'])
                             for s in data_samples], device=device)

    def _captions(self, data_samples) -> Optional[List[str]]:
        if self.text_encoder is None:
            return None
        return batch_captions(data_samples, self.caption_dropout)

    def target(self, latents: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the U-Net learns to predict: the noise, or the velocity
        (diffusers' ``DDPMScheduler.get_velocity``)."""
        if self.prediction_type == 'epsilon':
            return noise
        return self.scheduler.get_velocity(latents, noise, t)

    def loss_weights(self, t: Tensor) -> Optional[Tensor]:
        """Per-sample min-SNR-gamma weights, or None without ``snr_gamma``.

        ``min(SNR, gamma) / SNR`` for epsilon, ``/ (SNR + 1)`` for v, with
        diffusers' ``compute_snr``, as ``train_text_to_image.py`` weighs.
        """
        if self.snr_gamma is None:
            return None
        from diffusers.training_utils import compute_snr
        snr = compute_snr(self.scheduler, t)
        weight = torch.clamp(snr, max=self.snr_gamma)
        return weight / (snr if self.prediction_type == 'epsilon'
                         else snr + 1)

    def loss(self, inputs: Tensor, data_samples=None) -> Dict[str, Tensor]:
        """The denoising loss of a batch (images in [-1, 1]).

        Draws the posterior sample, the noise and the timesteps from the
        global RNG (seeded and saved with checkpoints by the runner).

        Returns:
            dict: ``loss`` (weighted MSE, what is optimised) and
            ``mse`` (plain MSE, logged only: comparable across weightings).
        """
        with self.autocast(inputs.device.type):
            latents = self.encode(inputs).float()
            noise = torch.randn_like(latents)
            b = latents.shape[0]
            t = torch.randint(0, self.scheduler.config.num_train_timesteps,
                              (b, ), device=latents.device).long()
            noisy = self.scheduler.add_noise(latents, noise, t)
            cond = self.condition(
                b, self._class_ids(data_samples, latents.device),
                latents.device, self._captions(data_samples))
            pred = self.unet(noisy, t, encoder_hidden_states=cond).sample
        mse = F.mse_loss(pred.float(), self.target(latents, noise, t).float(),
                         reduction='none').mean(dim=(1, 2, 3))
        weight = self.loss_weights(t)
        loss = mse.mean() if weight is None else (mse * weight).mean()
        return dict(loss=loss, mse=mse.mean().detach())

    def forward(self, inputs: Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        """mmengine's entry point.

        ``mode='loss'``: :meth:`loss`; ``'tensor'``: the scaled latents;
        ``'predict'`` is not defined (pretraining has no validation: set
        ``val_dataloader``/``val_cfg``/``val_evaluator`` to None; the export
        hook saves a DDIM sample grid at each checkpoint instead).
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.encode(inputs)
        raise RuntimeError(
            f"DiffusionPretrainer has no mode={mode!r}: pretraining is "
            'unsupervised, there is nothing to predict or evaluate. Fix: set '
            'val_dataloader, val_cfg and val_evaluator to None; look at the '
            'sample grids DiffusersExportHook writes, or probe the exported '
            'U-Net with tools/analysis_tools/probe_features.py.')

    @torch.no_grad()
    def sample(self, num_images: int, latent_size: Sequence[int],
               steps: int = 25, seed: int = 0,
               unet: Optional[nn.Module] = None,
               class_ids: Optional[Tensor] = None,
               captions: Optional[Sequence[str]] = None) -> Tensor:
        """DDIM samples (eta 0) decoded by the VAE, in [-1, 1].

        Leaves the global RNG untouched (a seeded generator draws the
        starting noise), so sampling during training changes no loss.

        Args:
            num_images (int): How many.
            latent_size (Sequence[int]): Latent ``(h, w)``.
            steps (int): DDIM steps. Defaults to 25.
            seed (int): Seed of the starting noise. Defaults to 0.
            unet (nn.Module, optional): U-Net to sample with (e.g. the
                exported EMA one). Defaults to this model's.
            class_ids (Tensor, optional): ``(num_images, )`` classes with
                ``conditioning='class'``; defaults to cycling through them.
            captions (Sequence[str], optional): ``num_images`` prompts with
                ``conditioning='caption'``. Defaults to the empty prompt.

        Returns:
            Tensor: ``(N, 3, H, W)`` images in [-1, 1].
        """
        from diffusers import DDIMScheduler
        unet = unet or self.unet
        device = next(unet.parameters()).device
        ddim = DDIMScheduler.from_config(self.scheduler.config)
        ddim.set_timesteps(steps)
        gen = torch.Generator().manual_seed(seed)
        channels = unet.config.in_channels
        latents = torch.randn((num_images, channels, *latent_size),
                              generator=gen).to(device)
        if self.class_embed is not None and class_ids is None:
            class_ids = torch.arange(num_images) % \
                self.class_embed.num_embeddings
        if self.text_encoder is not None and captions is None:
            captions = [''] * num_images
        cond = self.condition(num_images, class_ids, device, captions)
        was_training = unet.training
        unet.eval()
        for t in ddim.timesteps:
            pred = unet(latents, t, encoder_hidden_states=cond).sample
            latents = ddim.step(pred, t, latents).prev_sample
        unet.train(was_training)
        return self.decode(latents).clamp(-1, 1)


def _check_tokens_only(unet_config: dict) -> None:
    """Refuse U-Nets that need added conditioning (SDXL)."""
    if unet_config.get('addition_embed_type') is not None:
        raise ValueError(
            'DiffusionPretrainer trains U-Nets conditioned by tokens '
            'only (SD 1.x / 2.x layouts); this one needs added '
            f"conditioning ({unet_config['addition_embed_type']!r}, "
            'e.g. SDXL). Fix: use an SD1/SD2-shaped unet_cfg.')
