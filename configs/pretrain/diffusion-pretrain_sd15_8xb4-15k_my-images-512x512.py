# Domain adaptation of Stable Diffusion v1.5's U-Net on YOUR unlabelled
# images (microscopy, satellite, medical, ...): continued training with SD's
# own objective (frozen VAE, posterior sample x 0.18215, DDPM noise, epsilon,
# min-SNR-5), null prompt (no captions needed), EMA of the weights
# (mmengine's EMAHook, decay 0.9999 as diffusers' train_text_to_image.py
# --use_ema), gradient checkpointing. Hand-off: work_dirs/<name>/diffusers
# after each checkpoint, then any backbone config with
#   --cfg-options model.backbone.pretrained=work_dirs/<name>/diffusers \
#                 model.backbone.scale_latents=True
# Put the images (any sizes, any subfolders) under data/my_images; train
# with `bash tools/dist_train.sh <this file> 8` (8 GPUs x batch 4); add
# --amp for fp16 (AmpOptimWrapper) on GPUs. Memory: docs in the README's
# pretraining section.
_base_ = ['./diffusion-pretrain_tiny_demo-unlabelled.py']
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets'],
    allow_failed_imports=False)

image_size = 512
model = dict(
    _delete_=True,
    type='mmdiff.DiffusionPretrainer',
    pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
    prediction_type='epsilon',
    latent_mode='sample',
    conditioning='none',
    snr_gamma=5.0,
    grad_checkpointing=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=image_size, max_size=100000),
    dict(type='RandomCrop', crop_size=(image_size, image_size)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ImageFolderDataset',
        data_root='data/my_images',
        pipeline=train_pipeline))

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
    logger=dict(interval=50),
    checkpoint=dict(interval=2500, max_keep_ckpts=2))
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='NORMAL'),
    dict(type='mmdiff.DiffusersExportHook', num_samples=4, sample_steps=25),
    dict(type='mmdiff.NaNGuardHook')
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'))
