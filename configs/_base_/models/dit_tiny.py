# A tiny PixArt-Sigma-shaped diffusion transformer (random init) for the DiT
# demos and tests: 3 blocks of width 24, 2x2 patches on the 4-channel latents
# of the demos' pretrained tiny VAE (vpd_tiny.py), so features at stride 16.
# mmdiff.models.diffusion.tiny_pixart_cfg() reads it (the one definition).
# A config using it also has vpd_tiny.py's tiny_vae_cfg / demo_vae_dir (the
# demo runtime brings them).
tiny_pixart_cfg = dict(
    sample_size=8,
    num_layers=3,
    patch_size=2,
    attention_head_dim=8,
    num_attention_heads=3,
    caption_channels=32,
    in_channels=4,
    cross_attention_dim=24,
    out_channels=8,
    attention_bias=True,
    activation_fn='gelu-approximate',
    num_embeds_ada_norm=1000,
    norm_type='ada_norm_single',
    norm_elementwise_affine=False,
    norm_eps=1e-6,
    use_additional_conditions=False)
