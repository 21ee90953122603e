# mmdiff's hooks for the reference configs, beside any host recipe in
# `_base_` (no host config sets these keys): mmdiff's parts registered, a
# stop with the iteration number on a NaN/inf input or loss, and one message
# (or, with strict_load=True, an error) when load_from / --checkpoint leaves
# model tensors unloaded. Configs also make their checkpoint hook
# mmdiff.AtomicCheckpointHook (no truncated file after a kill).
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)
custom_hooks = [
    dict(type='mmdiff.NaNGuardHook'),
    dict(type='mmdiff.LoadCoverageHook')
]
