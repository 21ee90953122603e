# A tiny Stable-Diffusion-shaped U-Net + VAE (random init) for demos and tests:
# SD1.5's layout (4 levels, cross-attention in the 3 finest, 2 layers per
# block, VAE factor 8, 4 latent channels) with small widths. The one
# definition: mmdiff.models.diffusion.tiny_unet_cfg() / tiny_vae_cfg() read it.
# Feature channels finest-first: [32, 64, 64, 64] at strides [8, 16, 32, 64].
tiny_unet_cfg = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    down_block_types=('CrossAttnDownBlock2D', 'CrossAttnDownBlock2D',
                      'CrossAttnDownBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D',
                    'CrossAttnUpBlock2D'),
    block_out_channels=(32, 64, 64, 64),
    layers_per_block=2,
    norm_num_groups=32,
    cross_attention_dim=32,
    attention_head_dim=4)
tiny_vae_cfg = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=('DownEncoderBlock2D', ) * 4,
    up_block_types=('UpDecoderBlock2D', ) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=64)
# The demos' VAE: the tiny VAE above, pretrained as an autoencoder (no
# labels) on demo scenes of its own seed by mmdiff.DemoVAEHook before the
# weights are read, once per folder; as VPD uses SD's pretrained VAE frozen.
# A random frozen VAE keeps too little of the image (see
# mmdiff/datasets/demo_vae.py). Demo configs set the backbone's
# vae_weights=demo_vae_dir and add demo_vae_hook to the runtime's custom_hooks.
demo_vae_dir = 'data/demo/vae'
demo_vae_hook = dict(
    type='mmdiff.DemoVAEHook', out_dir=demo_vae_dir, vae_cfg=tiny_vae_cfg,
    steps=200)
# The demos' backbone (one definition for every demo and project demo):
# VPD on the tiny U-Net and the pretrained demo VAE. Configs add the
# conditioning (class_embeddings / use_attn ...) to it, e.g.
#   backbone=dict(_base_.demo_backbone, use_attn=True)
demo_backbone = dict(
    type='mmdiff.VPD',
    pretrained=None,
    unet_cfg=tiny_unet_cfg,
    vae_cfg=tiny_vae_cfg,
    vae_weights=demo_vae_dir)  # made by demo_vae_hook
