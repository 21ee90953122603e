# Shared by the mmseg demo configs: mmseg's runtime, the tiny SD-shaped
# U-Net (random init) and a few-minute CPU schedule. The U-Net is random
# here, so it trains at the full learning rate (the reference configs train
# a pretrained SD U-Net at 0.1x / 0.01x).
_base_ = ['mmseg::_base_/default_runtime.py', './models/vpd_tiny.py']
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)

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
        type='mmdiff.AtomicCheckpointHook', by_epoch=False, interval=max_iters // 2,
        max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
# Make the demos' pretrained VAE on first use; stop with the iteration number
# on a NaN/inf input or loss.
custom_hooks = [
    {{_base_.demo_vae_hook}},
    dict(type='mmdiff.NaNGuardHook')
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
