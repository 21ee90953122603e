# VPD semantic segmentation on Pascal VOC 2012 + SBD aug (21 classes incl.
# background), VPD's ADE20K recipe on mmseg's 40k VOC schedule length
# (VPD published no VOC figure).
_base_ = [
    '../_base_/models/vpd_sd15-fpn.py', '../_base_/datasets/voc12aug.py',
    '../_base_/schedules/vpd_40k.py', '../_base_/runtime/default_runtime.py'
]
num_classes = _base_.num_classes
model = dict(
    backbone=dict(class_embeddings=dict(class_names='voc')),
    # SD1.5 taps + the K = num_classes class attention maps at 1/16, 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    decode_head=dict(num_classes=num_classes))
