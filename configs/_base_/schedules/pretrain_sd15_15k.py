# Continued training of a pretrained SD U-Net: 15k iterations, AdamW 1e-5,
# 500 warm-up iterations from 1 %, gradients clipped at 1; a log line every
# 50 iterations, an atomic checkpoint (and a diffusers export) every 2500.
max_iters = 15000
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=500)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='mmdiff.AtomicCheckpointHook', by_epoch=False, interval=2500,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
