# Denoising-diffusion pretraining of the demos' tiny U-Net on UNLABELLED demo
# scenes (no labels are read), the objective SD was trained with: frozen VAE
# latents (posterior sample x scaling_factor), DDPM noise at random
# timesteps, epsilon prediction, MSE with min-SNR-5 weighting, null prompt.
# Minutes on 2 CPU cores:
#   python tools/train.py configs/pretrain/diffusion-pretrain_tiny_demo-unlabelled.py
# writes work_dirs/<name>/diffusers (U-Net (EMA) + VAE, a diffusers folder)
# and work_dirs/<name>/samples/iter_<N>.png (DDIM samples) at each
# checkpoint; then train a demo on it:
#   python tools/train.py configs/demo/vpd_tiny-fpn_demo-seg.py --cfg-options \
#     model.backbone.pretrained=work_dirs/<name>/diffusers \
#     model.backbone.scale_latents=True
_base_ = ['../_base_/models/vpd_tiny.py']
# mmseg's scope for the pipeline's transforms (ResizeShortestEdge, RandomCrop,
# PackSegInputs) and the demo data set class
default_scope = 'mmseg'
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets',
             'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)

image_size = 128
# The demo scenes of a seed the labelled demo sets (seed 0) and the demo VAE
# (its own generator, seed 1000) never use; read through the mmseg demo data
# set class with its labels ignored (no LoadAnnotations in the pipeline).
unlabelled_seed = 2000
num_unlabelled = 1024
model = dict(
    type='mmdiff.DiffusionPretrainer',
    unet_cfg={{_base_.tiny_unet_cfg}},
    vae_cfg={{_base_.tiny_vae_cfg}},
    vae_weights={{_base_.demo_vae_dir}},  # made by demo_vae_hook
    # 1 / std of the demo VAE's posterior samples (1.27 on 32 demo scenes of
    # 128 px), SD's rule for its 0.18215; written into the exported VAE
    scaling_factor=0.78,
    prediction_type='epsilon',
    latent_mode='sample',
    conditioning='none',
    snr_gamma=5.0)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # any image size: shortest edge to image_size, random square crop
    dict(type='ResizeShortestEdge', scale=image_size, max_size=100000),
    dict(type='RandomCrop', crop_size=(image_size, image_size)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='DemoSegDataset',
        data_root='data/demo/unlabelled/seg',
        size=image_size,
        num_train=num_unlabelled,
        num_val=0,
        seed=unlabelled_seed,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None

max_iters = 400
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=1e-2),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='mmdiff.AtomicCheckpointHook', by_epoch=False,
        interval=max_iters // 2, max_keep_ckpts=2),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [
    {{_base_.demo_vae_hook}},
    # EMA of the weights; the export hook writes the EMA U-Net
    dict(type='EMAHook', momentum=0.01, priority='NORMAL'),
    dict(type='mmdiff.DiffusersExportHook', num_samples=8, sample_steps=25),
    dict(type='mmdiff.NaNGuardHook')
]
visualizer = dict(
    type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
