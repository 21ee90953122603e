# UperNet on VPD features with a stride-4 level (P2) from the VAE encoder
# (vae_taps=(1, ): SD's VAE down_blocks.1, 256 channels) in front of the
# SD1.5 taps + the 150 class attention maps, ADE20K. UPerHead reads strides
# 4-64 (PPM on the coarsest) as it reads a ResNet's 4-32; an FCN auxiliary
# head on the stride-16 tap. VPD's ADE20K recipe otherwise (data, schedule,
# slide test). No published figure for this pairing; untrained here.
_base_ = ['./vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
num_classes = 150
# the VAE level, then the taps with the K class maps at 1/16 and 1/32
in_channels = [256] + [
    c + num_classes * (i in _base_.sd15_attn_taps)
    for i, c in enumerate(_base_.sd15_channels)
]
model = dict(
    backbone=dict(vae_taps=(1, )),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=in_channels,
        in_index=[0, 1, 2, 3, 4],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=in_channels[2],
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
