# Released diffusion transformers as DiTBackbones: four blocks spread over
# the depth (one per level of ViTDet's simple feature pyramid, finest
# first), the null prompt, timestep 1 (sigma 0.001), no noise, gradient
# checkpointing. Configs add mmdiff.SimpleFeaturePyramid with
# in_channels=[<width>] * 4 (Sana, stride 32: scale_factors=(8, 4, 2, 1)).
sd35m = 'stabilityai/stable-diffusion-3.5-medium'
flux1dev = 'black-forest-labs/FLUX.1-dev'
sd35m_backbone = dict(
    type='mmdiff.DiTBackbone',
    pretrained=sd35m,
    taps=(5, 11, 17, 23),  # of 24 blocks
    grad_checkpointing=True)
sd35m_width = 1536
flux1dev_backbone = dict(
    type='mmdiff.DiTBackbone',
    pretrained=flux1dev,
    taps=(18, 32, 45, 56),  # 19 joint + 38 single blocks
    grad_checkpointing=True)
flux1dev_width = 3072
sana1600m = 'Efficient-Large-Model/Sana_1600M_1024px_diffusers'
sana1600m_backbone = dict(
    type='mmdiff.DiTBackbone',
    pretrained=sana1600m,
    taps=(4, 9, 14, 19),  # of 20 blocks, at stride 32
    grad_checkpointing=True)
sana1600m_width = 2240
