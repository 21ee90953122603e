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
# --amp for fp16 (AmpOptimWrapper) on GPUs. Memory: docs/results.md.
_base_ = [
    '../_base_/runtime/pretrain_runtime.py', '../_base_/datasets/my_images_512.py',
    '../_base_/schedules/pretrain_sd15_15k.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets'],
    allow_failed_imports=False)
model = dict(
    type='mmdiff.DiffusionPretrainer',
    pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
    prediction_type='epsilon',
    latent_mode='sample',
    conditioning='none',
    snr_gamma=5.0,
    grad_checkpointing=True)
custom_hooks = [
    dict(type='EMAHook', momentum=1e-4, priority='NORMAL'),
    dict(type='mmdiff.DiffusersExportHook', num_samples=4, sample_steps=25),
    dict(type='mmdiff.NaNGuardHook')
]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='nccl'))
