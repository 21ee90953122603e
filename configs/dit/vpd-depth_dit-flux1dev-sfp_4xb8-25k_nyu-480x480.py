# The SD3.5-medium config (NYU depth with VPD's head)
# on FLUX.1-dev: blocks 18, 32, 45, 56 of its 19 joint + 38 single blocks,
# width 3072. Untrained here.
_base_ = ['./vpd-depth_dit-sd35m-sfp_4xb8-25k_nyu-480x480.py']
model = dict(
    backbone=dict(
        _delete_=True, pad_shape=512, **_base_.flux1dev_backbone),
    neck=dict(in_channels=[_base_.flux1dev_width] * 4))
