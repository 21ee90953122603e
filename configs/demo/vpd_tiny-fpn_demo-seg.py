# Demo: semantic segmentation with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (4 classes incl. background), mmseg's Semantic FPN.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
# The data is written to data/demo/seg on first use.
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/models/vpd_tiny.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)

num_classes = 4
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],  # images to [-1, 1], as the VAE expects
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size_divisor=8)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        # learned prompts (one 32-d token per class): no CLIP model offline
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    # taps [32, 64, 64, 64] + K attention channels at strides 16 and 32
    neck=dict(
        type='FPN',
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        out_channels=32,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[32, 32, 32, 32],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=32,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'DemoSegDataset'
data_root = 'data/demo/seg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# The reference recipe (AdamW, U-Net at 0.1x lr, poly) scaled down.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={'backbone.unet': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False,
                    interval=max_iters // 2, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
