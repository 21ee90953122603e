# VPD's ADE20K schedule (wl-zhao/VPD segmentation/configs/
# fpn_vpd_sd1-5_512x512_gpu8x2.py on _base_/schedules/schedule_80k.py;
# recorded in tests/data/recipes/vpd_ade20k.yml): AdamW lr 8e-5, wd 1e-3,
# U-Net lr x0.1, norms without decay, poly, warm-up 1500 iters, 80k iters
# (8 GPUs x 2 images); a log line every 50 iterations, an atomic checkpoint
# every 8000 (two kept), as mmseg's schedules carry their hooks.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=8e-5, weight_decay=1e-3),
    # VPD: custom_keys {unet: lr x0.1, encoder_vq: lr 0, text_encoder: lr 0,
    # norm: decay 0}. mmengine (like mmcv 1.x) tries the keys longest first,
    # ties alphabetically, so VPD's 'norm' wins over 'unet': U-Net norms
    # whose ldm name holds 'norm' (the SpatialTransformer GroupNorm and the
    # transformer blocks' LayerNorms) train at lr x1 without decay, the
    # ResBlock GroupNorms (ldm 'in_layers.0'/'out_layers.0') at x0.1 with
    # decay. The keys below give every diffusers parameter VPD's (lr, decay)
    # (checked per parameter by tests/test_converters/zoo/; diffusers
    # also calls the ResBlock norms 'norm1'/'norm2', so a bare 'norm' would
    # not). The VAE is frozen (VPD: lr 0); no text encoder is built.
    paramwise_cfg=dict(custom_keys={
        'unet': dict(lr_mult=0.1),
        '.norm.': dict(decay_mult=0.),  # Transformer2DModel.norm
        'transformer_blocks.0.norm': dict(decay_mult=0.),  # norm1/2/3
    }))
max_iters = 80000
# mmcv 1.x (VPD): lr = poly(iter / max_iters) x linear warm-up factor
# (1e-6 -> 1 over 1500 iterations). mmengine chains overlapping schedulers
# multiplicatively, so both run from iteration 0; its schedulers reach their
# end value at `end - 1`, hence the +1 (same lr as mmcv 1.x at every
# iteration: tests/test_configs/test_recipes.py).
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
