"""The two backbones of the comparison, built from the shared weights
(:func:`~mmdiff.benchmark.weights.prepare_weights`) with public methods
only: mmdiff's ``VPD`` through its ``pretrained`` path, and mmseg 1.2's real
``VPD`` class on ldm's modules (``diffusion_cfg.target`` is
:class:`mmdiff.testing.ldm.LdmStableDiffusion`).

``args`` is the tool's namespace: ``unet_config``, ``input_size``,
``attn_maps``, ``grad_ckpt``, ``freeze_unet``, ``lora_rank``,
``vae_slicing``, ``vae_taps`` (the ``mmdiff_p2`` case: mmdiff's ``VPD`` with
finer levels from the VAE encoder), ``dit_taps`` (the ``dit`` case: a
``DiTBackbone`` at SD3.5-medium's shapes), ``neck`` (an mmdet FPN after the
backbone, :func:`with_fpn`).

Same weights: a seeded SD-shaped ldm U-Net + VAE (Stability-AI's ldm, PyPI
stable-diffusion-sdkit 2.1.5; SD1 modules as CompVis') is written as an
SD single-file checkpoint and converted to diffusers with diffusers' own
helpers (``convert_ldm_unet_checkpoint``/``convert_ldm_vae_checkpoint``);
mmdiff loads the diffusers folder through its normal ``pretrained`` path,
mmseg's real ``VPD`` class builds ldm's ``UNetModel`` from the ldm file.
Same class embeddings, text adapter and input images for both.

mmseg's ``VPD`` builds ``diffusion_cfg`` with ldm's
``instantiate_from_config``. ldm's ``LatentDiffusion`` needs
pytorch_lightning AND torchvision (``ddpm.py`` imports
``torchvision.utils.make_grid``), so ``diffusion_cfg.target`` here is
:class:`mmdiff.testing.ldm.LdmStableDiffusion`: ldm's own ``UNetModel``,
``Encoder``/``Decoder`` and ``DiagonalGaussianDistribution`` in the attribute
layout mmseg reads (``.model.diffusion_model``,
``.first_stage_model.encode(x).mode()``).
"""
import torch
from torch import nn

from mmdiff.testing import ldm

OPTIMIZERS = {
    'sgd': dict(type='SGD', lr=1e-4, momentum=0.9),
    'adamw': dict(type='AdamW', lr=1e-4, weight_decay=1e-3),
    # transformers' Adafactor through mmengine's optimizer registry.
    'adafactor': dict(type='Adafactor', lr=1e-4, scale_parameter=False,
                      relative_step=False, warmup_init=False),
    'torch-adafactor': dict(type='TorchAdafactor', lr=1e-2),
}


def build_mmdiff(args, paths: dict, vae_taps=()) -> nn.Module:
    """mmdiff's ``VPD`` from the diffusers folder, class embeddings and
    text adapter of ``paths`` (``vae_taps``: its finer VAE levels)."""
    from mmdiff.models.backbones import VPD
    lora = dict(rank=args.lora_rank) if args.lora_rank > 0 else None
    model = VPD(pretrained=paths['diffusers'], local_files_only=True,
                class_embeddings=paths['embeddings'],
                use_attn=args.attn_maps, grad_checkpointing=args.grad_ckpt,
                freeze_unet=args.freeze_unet, lora=lora,
                vae_taps=tuple(vae_taps))
    model.init_weights()
    adapter = torch.load(paths['adapter'], weights_only=True)
    model.conditioner.text_adapter.fc.load_state_dict(adapter['fc'])
    model.conditioner.text_adapter.gamma.data.copy_(adapter['gamma'])
    if args.vae_slicing:
        model.vae.enable_slicing()
    return model


def build_mmseg(args, paths: dict) -> nn.Module:
    """mmseg 1.2's ``VPD`` on ldm's modules loaded from the single file."""
    from mmseg.models.backbones.vpd import VPD
    cfg = ldm.LDM_CONFIGS[args.unet_config]
    unet_config = dict(cfg['unet'], use_checkpoint=args.grad_ckpt)
    model = VPD(
        diffusion_cfg=dict(
            target=f'{ldm.LdmStableDiffusion.__module__}.LdmStableDiffusion',
            params=dict(unet_config=unet_config, ddconfig=cfg['vae'],
                        embed_dim=4, ckpt=paths['ldm'])),
        class_embed_path=paths['embeddings'],
        unet_cfg=dict(use_attn=args.attn_maps,
                      base_size=args.input_size))
    adapter = torch.load(paths['adapter'], weights_only=True)
    model.text_adapter.fc.load_state_dict(adapter['fc'])
    model.gamma.data.copy_(adapter['gamma'])
    if args.freeze_unet:
        model.unet.requires_grad_(False)
    return model


def build_mmdiff_p2(args, paths: dict) -> nn.Module:
    """mmdiff's ``VPD`` with ``vae_taps=args.vae_taps`` (e.g. the stride-4
    level of the VAE encoder), otherwise :func:`build_mmdiff`'s."""
    return build_mmdiff(args, paths, vae_taps=args.vae_taps)


def build_dit(args, paths: dict) -> nn.Module:
    """mmdiff's ``DiTBackbone`` at SD3.5-medium's shapes (transformer and
    16-channel VAE; ``args.dit_config='tiny'``: the tiny SD3.5 layout),
    random seeded weights (none are downloaded), taps ``args.dit_taps``;
    maps of the last tapped block with ``--attn-maps``."""
    from mmdiff.models.backbones import DiTBackbone
    from mmdiff.models.diffusion import tiny_dit_configs
    from mmdiff.models.diffusion.presets import (SD3_VAE,
                                                 SD35_MEDIUM_TRANSFORMER)
    transformer, vae = (SD35_MEDIUM_TRANSFORMER, SD3_VAE) \
        if args.dit_config == 'sd35m' else tiny_dit_configs('sd3')
    torch.manual_seed(args.seed)
    taps = tuple(args.dit_taps)
    return DiTBackbone(
        family='sd3', transformer_cfg=transformer, vae_cfg=vae, taps=taps,
        attn_blocks=taps[-1:] if args.attn_maps else (),
        grad_checkpointing=args.grad_ckpt, freeze_transformer=args.freeze_unet,
        lora=dict(rank=args.lora_rank) if args.lora_rank > 0 else None)


BUILDERS = dict(mmdiff=build_mmdiff, mmseg=build_mmseg,
                mmdiff_p2=build_mmdiff_p2, dit=build_dit)


class WithNeck(nn.Module):
    """A backbone followed by a neck (``neck(backbone(x))``)."""

    def __init__(self, backbone: nn.Module, neck: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck

    def forward(self, inputs: torch.Tensor):
        return self.neck(self.backbone(inputs))


def with_fpn(model: nn.Module, out_channels: int = 256) -> WithNeck:
    """``model`` followed by mmdet's FPN on all its outputs (channels read
    from one small forward), as the detection configs use it."""
    from mmdet.models.necks import FPN
    with torch.no_grad():
        param = next(model.parameters())
        outs = model(torch.zeros(1, 3, 64, 64, device=param.device))
    channels = [out.shape[1] for out in outs]
    torch.manual_seed(0)  # the same neck weights in every case's process
    neck = FPN(in_channels=channels, out_channels=out_channels,
               num_outs=len(channels)).to(param.device)
    return WithNeck(model, neck)


def unet_fn(impl: str, model: nn.Module, inputs: torch.Tensor):
    """A closure running only the U-Net on precomputed latents/context."""
    if isinstance(model, WithNeck):
        model = model.backbone
    with torch.no_grad():
        if impl == 'dit':  # the transformer alone, up to its last tap
            latents = model.add_noise(model.encode(inputs))
            text, pooled = model.condition(inputs.shape[0])
            return lambda: model.run_transformer(latents, text, pooled)
        if impl.startswith('mmdiff'):
            latents = model.encode(inputs)
            cond = model.condition(inputs.shape[0])
            return lambda: model.run_unet(latents, cond)
        latents = model.encoder_vq.encode(inputs).mode()
        ctx = model.text_adapter(model.class_embeddings, model.gamma)
        ctx = ctx.unsqueeze(0).repeat(inputs.shape[0], 1, 1)
        t = torch.ones((inputs.shape[0], ), device=inputs.device).long()
        return lambda: model.unet(latents, t, context=ctx)
