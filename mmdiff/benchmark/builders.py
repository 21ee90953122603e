"""The two backbones of the comparison, built from the shared weights
(:func:`~mmdiff.benchmark.weights.prepare_weights`) with public methods
only: mmdiff's ``VPD`` through its ``pretrained`` path, and mmseg 1.2's real
``VPD`` class on ldm's modules (``diffusion_cfg.target`` is
:class:`mmdiff.testing.ldm.LdmStableDiffusion`).

``args`` is the tool's namespace: ``unet_config``, ``input_size``,
``attn_maps``, ``grad_ckpt``, ``freeze_unet``, ``lora_rank``,
``vae_slicing``.
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


def build_mmdiff(args, paths: dict) -> nn.Module:
    """mmdiff's ``VPD`` from the diffusers folder, class embeddings and
    text adapter of ``paths``."""
    from mmdiff.models.backbones import VPD
    lora = dict(rank=args.lora_rank) if args.lora_rank > 0 else None
    model = VPD(pretrained=paths['diffusers'], local_files_only=True,
                class_embeddings=paths['embeddings'],
                use_attn=args.attn_maps, grad_checkpointing=args.grad_ckpt,
                freeze_unet=args.freeze_unet, lora=lora)
    model.init_weights()
    adapter = torch.load(paths['adapter'], weights_only=True)
    model.text_adapter.fc.load_state_dict(adapter['fc'])
    model.text_adapter.gamma.data.copy_(adapter['gamma'])
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


def unet_fn(impl: str, model: nn.Module, inputs: torch.Tensor):
    """A closure running only the U-Net on precomputed latents/context."""
    with torch.no_grad():
        if impl == 'mmdiff':
            latents = model.encode(inputs)
            cond = model.condition(inputs.shape[0]).to(latents.device)
            return lambda: model.run_unet(latents, cond)
        latents = model.encoder_vq.encode(inputs).mode()
        ctx = model.text_adapter(model.class_embeddings, model.gamma)
        ctx = ctx.unsqueeze(0).repeat(inputs.shape[0], 1, 1)
        t = torch.ones((inputs.shape[0], ), device=inputs.device).long()
        return lambda: model.unet(latents, t, context=ctx)
