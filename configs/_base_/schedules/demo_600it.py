# The mmseg demos' few-minute CPU schedule: 600 iterations, AdamW at the full
# learning rate (the U-Net is random here; the reference configs train a
# pretrained SD U-Net at 0.1x / 0.01x), 30 warm-up iterations, poly decay;
# a log line every 10 iterations, two atomic checkpoints.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-3),
    clip_grad=dict(max_norm=1.0))
max_iters = 600
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='mmdiff.AtomicCheckpointHook', by_epoch=False,
        interval=max_iters // 2, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
