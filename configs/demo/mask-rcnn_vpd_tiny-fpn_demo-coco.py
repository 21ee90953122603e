# Demo: instance segmentation with a tiny random-init SD-shaped U-Net on the
# generated COCO-format demo scenes (3 classes, polygon masks), mmdet's
# Mask R-CNN with FPN on the VPD taps + class cross-attention maps.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', '../_base_/models/vpd_tiny.py',
    '../_base_/datasets/demo_coco.py', '../_base_/schedules/demo_det_400it.py',
    '../_base_/runtime/demo_det_runtime.py'
]
num_classes = 3
# VPD taps finest-first [32, 64, 64, 64] at strides 8-64; with use_attn the
# 1/16 and 1/32 taps carry K = num_classes attention maps more.
strides = [8, 16, 32, 64]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _base_.demo_backbone, _delete_=True,
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    neck=dict(
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        out_channels=64,
        num_outs=5),  # P6 by max-pooling for the RPN
    rpn_head=dict(
        in_channels=64,
        feat_channels=64,
        anchor_generator=dict(scales=[2], strides=strides + [128])),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=64, featmap_strides=strides),
        bbox_head=dict(
            in_channels=64, fc_out_channels=128, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=64, featmap_strides=strides),
        mask_head=dict(
            in_channels=64, conv_out_channels=64, num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))
default_hooks = dict(checkpoint=dict(interval=_base_.max_iters // 2))
# the runtime's hooks and the demo VAE's (made before the weights are read)
custom_hooks = [_base_.demo_vae_hook, *_base_.custom_hooks]
