# The SD3.5-medium config (UperNet, ADE20K)
# on FLUX.1-dev: blocks 18, 32, 45, 56 of its 19 joint + 38 single blocks,
# width 3072. Untrained here.
_base_ = ['./upernet_dit-sd35m-sfp_8xb2-80k_ade20k-512x512.py']
model = dict(
    backbone=dict(_delete_=True, **_base_.flux1dev_backbone),
    neck=dict(in_channels=[_base_.flux1dev_width] * 4))
