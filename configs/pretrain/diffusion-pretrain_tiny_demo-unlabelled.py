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
_base_ = [
    '../_base_/models/vpd_tiny.py', '../_base_/runtime/pretrain_runtime.py',
    '../_base_/datasets/demo_unlabelled.py',
    '../_base_/schedules/pretrain_demo_400it.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.engine', 'mmdiff.datasets',
             'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)
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
custom_hooks = [
    {{_base_.demo_vae_hook}},
    # EMA of the weights; the export hook writes the EMA U-Net
    dict(type='EMAHook', momentum=0.01, priority='NORMAL'),
    dict(type='mmdiff.DiffusersExportHook', num_samples=8, sample_steps=25),
    dict(type='mmdiff.NaNGuardHook')
]
