# What every demo adds to its host's runtime (no key a host recipe sets, so
# it can sit beside a whole mmdet/mmseg config in `_base_`): the demo data
# sets registered, a stop with the iteration number on a NaN/inf input or
# loss, seed 0. No model: the demo leaves add the demo VAE's hook
# (`demo_vae_hook` of models/vpd_tiny.py) to these custom_hooks.
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.demo_datasets'],
    allow_failed_imports=False)
custom_hooks = [dict(type='mmdiff.NaNGuardHook')]
randomness = dict(seed=0)
