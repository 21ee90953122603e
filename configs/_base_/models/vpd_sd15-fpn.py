# VPD semantic segmentation: SD1.5 U-Net taps + cross-attention maps of the K
# class prompts -> FPN -> FPNHead (Semantic FPN), with VPD's ADE20K recipe
# (AdamW lr 8e-5, wd 1e-3, U-Net lr x0.1, poly, warm-up 1500 iters, 80k iters,
# 8 GPUs x 2 images). A config using it adds a data set and sets `num_classes`,
# the class names of the prompts and the neck's in_channels.
_base_ = ['mmseg::_base_/default_runtime.py', './vpd_sd15.py']
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],  # the VAE takes images in [-1, 1]
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names=None,  # set by the data set config
            text_encoder={{_base_.clip_l14}},
            templates='vpd',
            output='pooled'),
        text_adapter=True,
        use_attn=True,
        attn_grad=False,
        timestep=1),
    neck=dict(
        type='FPN',
        in_channels=None,  # [320, 640 + K, 1280 + K, 1280]
        out_channels=256,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=128,
        dropout_ratio=0.1,
        num_classes=None,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=8e-5, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={'backbone.unet': dict(lr_mult=0.1)}))
max_iters = 80000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500,
         end=max_iters)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=8000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='mmdiff.AtomicCheckpointHook', by_epoch=False, interval=8000,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Stop with the iteration number on a NaN/inf input or loss.
custom_hooks = [dict(type='mmdiff.NaNGuardHook')]
