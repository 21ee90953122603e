# VPD's ADE20K schedule: AdamW, U-Net lr x0.1, norms without decay, poly with
# a 1500-iteration warm-up, 80k iterations (8 GPUs x 2 images), plus the log
# and atomic checkpoint hooks. Source and reasoning: configs/vpd/README.md.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=8e-5, weight_decay=1e-3),
    # every parameter gets VPD's (lr, decay): configs/vpd/README.md,
    # "Parameter groups"; the VAE is frozen, no text encoder is built
    paramwise_cfg=dict(custom_keys={
        'unet': dict(lr_mult=0.1),
        '.norm.': dict(decay_mult=0.),  # Transformer2DModel.norm
        'transformer_blocks.0.norm': dict(decay_mult=0.),  # norm1/2/3
    }))
max_iters = 80000
# warm-up x poly from iteration 0, `end + 1`: mmcv 1.x's lr at every
# iteration (configs/vpd/README.md "Warm-up")
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters + 1)
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
