# What every demo adds to its host's runtime (no key a host recipe sets, so
# it can sit beside a whole mmdet/mmseg config in `_base_`): the demo data
# sets registered, the demos' pretrained VAE made on first use
# (mmdiff.DemoVAEHook, see models/vpd_tiny.py), a stop with the iteration
# number on a NaN/inf input or loss, seed 0.
_base_ = ['./models/vpd_tiny.py']
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)
custom_hooks = [
    {{_base_.demo_vae_hook}},
    dict(type='mmdiff.NaNGuardHook')
]
randomness = dict(seed=0)
