# Demo: monocular depth with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (NYU layout, depth in mm, scene name in the file
# name), mmseg's DepthEstimator + VPDDepthHead, as in mmseg's VPD NYU config.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = [
    'mmseg::_base_/default_runtime.py', '../_base_/models/vpd_tiny.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)

image_size = 128  # the head needs the 1/64 map to be half the 1/32 map
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,
    size=(image_size, image_size))
model = dict(
    type='DepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        # one learned 32-d prompt per NYU scene (27), picked per image from
        # the scene in the file name; the mean prompt when it is unknown
        class_embeddings=dict(num_classes=27, dim=32),
        class_embed_select=True,
        use_attn=False),
    decode_head=dict(
        type='VPDDepthHead',
        in_channels=[32, 64, 64, 64],
        max_depth=10,
        embed_dim=16,
        feature_dim=128,
        num_deconv_filters=(16, 16, 16),
        fmap_border=0),
    test_cfg=dict(mode='whole'))

dataset_type = 'DemoDepthDataset'
data_root = 'data/demo/depth'
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        data_prefix=dict(
            img_path='images/train', depth_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        test_mode=True,
        data_prefix=dict(
            img_path='images/test', depth_map_path='annotations/test'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='DepthMetric', min_depth_eval=0.001, max_depth_eval=10.0)
test_evaluator = val_evaluator

# mmseg's VPD NYU recipe (AdamW, U-Net at 0.01x lr, no bias decay), scaled.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(
        bias_decay_mult=0, custom_keys={'backbone.unet': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=0.9, by_epoch=False, begin=30,
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
