# UperNet on Sana 1600M 1024px DiT features (DiTBackbone, four of its 20
# blocks, null prompt, stride 32: DC-AE 32x, 1x1 patches) through ViTDet's
# simple feature pyramid with scale_factors (8, 4, 2, 1) (strides 4-32),
# ADE20K with VPD's recipe (data, schedule, slide test) and an FCN auxiliary
# head on stride 16. Untrained here: no published figure for this pairing.
_base_ = [
    '../vpd/upernet_vpd-p2_sd15_8xb2-80k_ade20k-512x512.py',
    '../_base_/models/dit_released.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.sana1600m_backbone),
    neck=dict(
        _delete_=True,
        type='mmdiff.SimpleFeaturePyramid',
        in_channels=[_base_.sana1600m_width] * 4,
        out_channels=768,
        scale_factors=(8, 4, 2, 1)),
    decode_head=dict(in_channels=[768] * 4, in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=768, in_index=2))
