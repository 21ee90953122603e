# Generative depth demo: the tiny random-init SD-shaped U-Net as a one-step
# predictor of the depth latent (Lotus-D style: image latent in, x0 out at
# the fixed timestep 999, latent-space MSE), decoded by a frozen demo VAE,
# on the VPD depth demo's data, schedule and budget (600 iterations, batch
# 4). Metric depth (d / 10 m -> [-1, 1]), as the VPD-head demo is.
#   python tools/train.py projects/GenerativeDepth/configs/<this file>
# The VAE: the sources reuse SD's image VAE for depth maps unchanged. The
# VPD demos' VAE (RGB scenes only) cannot carry them: a depth map encoded
# and decoded by it scores at chance (RMSE 1.458 m; this VAE: 0.711 m; see
# the project README), so no latent predictor can do better with it. This demo
# pretrains its own tiny VAE once (data/demo/vae_depth), as an autoencoder
# on rendered scenes of its own seed, half of each batch their depth maps as
# grey images: an image autoencoder that has also seen depth-like images.
_base_ = ['mmdiff::demo/vpd_tiny-depth_demo-nyu.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.GenerativeDepth.generative_depth'
    ],
    allow_failed_imports=False)
depth_vae_dir = 'data/demo/vae_depth'
model = dict(
    _delete_=True,
    type='mmdiff.GenerativeDepth',
    data_preprocessor={{_base_.data_preprocessor}},
    pretrained=None,
    unet_cfg={{_base_.tiny_unet_cfg}},
    vae_cfg={{_base_.tiny_vae_cfg}},
    vae_weights=depth_vae_dir,  # made by the DemoVAEHook below
    input_mode='direct',
    timestep=999,
    target='depth',
    depth_mode='metric',
    max_depth=10.,
    loss='latent_mse')
custom_hooks = [
    dict(type='mmdiff.DemoVAEHook', out_dir=depth_vae_dir,
         vae_cfg={{_base_.tiny_vae_cfg}}, steps=200, depth_fraction=0.5),
    dict(type='mmdiff.NaNGuardHook')
]
