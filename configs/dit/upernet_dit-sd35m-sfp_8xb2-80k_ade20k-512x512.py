# UperNet on SD3.5-medium DiT features (DiTBackbone, four blocks, null prompt)
# through ViTDet's simple feature pyramid (strides 4-32), ADE20K with VPD's
# recipe (data, schedule, slide test) and an FCN auxiliary head on stride 16.
# Untrained here: no published figure for this pairing.
_base_ = [
    '../vpd/upernet_vpd-p2_sd15_8xb2-80k_ade20k-512x512.py',
    '../_base_/models/dit_released.py'
]
model = dict(
    backbone=dict(_delete_=True, **_base_.sd35m_backbone),
    neck=dict(
        _delete_=True,
        type='mmdiff.SimpleFeaturePyramid',
        in_channels=[_base_.sd35m_width] * 4,
        out_channels=768),
    decode_head=dict(in_channels=[768] * 4, in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=768, in_index=2))
