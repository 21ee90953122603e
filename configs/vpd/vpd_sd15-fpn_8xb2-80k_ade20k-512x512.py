# VPD (Zhao et al., ICCV 2023) semantic segmentation on ADE20K (150 classes).
# VPD reports 53.7 mIoU (54.6 multi-scale + flip) with this recipe.
_base_ = [
    '../_base_/models/vpd_sd15-fpn.py', '../_base_/datasets/ade20k.py',
    '../_base_/schedules/vpd_80k.py', '../_base_/runtime/default_runtime.py'
]
num_classes = _base_.num_classes
model = dict(
    backbone=dict(class_embeddings=dict(class_names='ade20k')),
    # SD1.5 taps + the K = num_classes class attention maps at 1/16, 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    decode_head=dict(num_classes=num_classes))
# Multi-scale + flip test (tools/test.py --tta): VPD's --aug-test, the
# protocol of its 54.6 figure: ratios 1.0-1.5 of (2048, 512) (each scale
# (int(2048 * r), int(512 * r)) as mmseg 0.x computed it, keep_ratio), each
# without and with a horizontal flip, slide test per scale, softmax averaged
# (mmseg's SegTTAModel). mmseg's own ADE20K tta_pipeline (scale factors
# 0.5-1.75 of the original image) is another protocol.
vpd_aug_test_ratios = [1.0, 1.125, 1.25, 1.375, 1.5]
tta_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='Resize',
                    scale=(int(2048 * r), int(512 * r)),
                    keep_ratio=True) for r in vpd_aug_test_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
