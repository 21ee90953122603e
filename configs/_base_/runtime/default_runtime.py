# Runtime of the mmseg reference configs: mmseg's runtime and mmdiff's hooks
# (mmdiff_hooks.py). The log/checkpoint hooks go with the schedule
# (schedules/vpd_80k.py), as in mmseg's own schedules.
_base_ = ['mmseg::_base_/default_runtime.py', './mmdiff_hooks.py']
