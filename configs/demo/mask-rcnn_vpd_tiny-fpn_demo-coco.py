# Demo: instance segmentation with a tiny random-init SD-shaped U-Net on the
# generated COCO-format demo scenes (3 classes, polygon masks), mmdet's
# Mask R-CNN with FPN on the VPD taps + class cross-attention maps.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/models/vpd_tiny.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)

num_classes = 3
image_size = 128
# VPD taps finest-first [32, 64, 64, 64] at strides 8-64; with use_attn the
# 1/16 and 1/32 taps carry K = num_classes attention maps more.
strides = [8, 16, 32, 64]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        vae_weights={{_base_.demo_vae_dir}},  # made by demo_vae_hook
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

dataset_type = 'DemoCocoDataset'
data_root = 'data/demo/coco/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# The U-Net is random here, so it trains at the full learning rate.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-3),
    clip_grad=dict(max_norm=5.0))
max_iters = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=40),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=40,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(type='mmdiff.AtomicCheckpointHook', by_epoch=False,
                    interval=max_iters // 2,
                    max_keep_ckpts=2))
custom_hooks = [
    {{_base_.demo_vae_hook}},
    dict(type='mmdiff.NaNGuardHook')
]
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
