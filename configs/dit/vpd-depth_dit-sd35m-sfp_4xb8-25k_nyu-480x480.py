# Monocular depth on NYUv2 from SD3.5-medium DiT features (DiTBackbone, four
# blocks, null prompt) with mmseg's VPD recipe and VPDDepthHead: the simple
# feature pyramid makes the head's strides 8-64 (scales 2, 1, 0.5, 0.25 of the
# stride-16 tokens); 480x480 crops padded to 512, the head's fmap_border trims
# them, as for the U-Net. Untrained here.
_base_ = [
    '../vpd/vpd_sd15_4xb8-25k_nyu-480x480.py',
    '../_base_/models/dit_released.py'
]
model = dict(
    backbone=dict(_delete_=True, pad_shape=512, **_base_.sd35m_backbone),
    neck=dict(
        type='mmdiff.SimpleFeaturePyramid',
        in_channels=[_base_.sd35m_width] * 4,
        out_channels=256,
        scale_factors=(2, 1, 0.5, 0.25)),
    decode_head=dict(in_channels=[256] * 4))
# the U-Net recipe's lr x0.01 for the pretrained part, here the transformer
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        bias_decay_mult=0,
        force_default_settings=True,
        custom_keys={'backbone.transformer': dict(lr_mult=0.01)}))
