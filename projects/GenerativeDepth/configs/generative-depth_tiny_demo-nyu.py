# Generative depth demo: the tiny random-init SD-shaped U-Net as a one-step
# predictor of the depth latent (Lotus-D style: image latent in, x0 out at
# the fixed timestep 999, latent-space MSE), decoded by the demos' frozen
# VAE, on the VPD depth demo's data, schedule and budget (600 iterations,
# batch 4). Metric depth (d / 10 m -> [-1, 1]), as the VPD-head demo is.
#   python tools/train.py projects/GenerativeDepth/configs/<this file>
_base_ = ['mmdiff::demo/vpd_tiny-depth_demo-nyu.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.GenerativeDepth.generative_depth'
    ],
    allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmdiff.GenerativeDepth',
    data_preprocessor={{_base_.data_preprocessor}},
    # the demos' tiny U-Net and pretrained VAE (not a VPD backbone here)
    **{k: v for k, v in _base_.demo_backbone.items() if k != 'type'},
    input_mode='direct',
    timestep=999,
    target='depth',
    depth_mode='metric',
    max_depth=10.,
    loss='latent_mse')
