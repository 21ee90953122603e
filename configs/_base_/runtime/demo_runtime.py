# Runtime of the mmseg demos (seg, depth): mmseg's runtime, gloo, and the
# demo hooks (demo_hooks.py). The log/checkpoint hooks go with the schedule
# (schedules/demo_600it.py), as in mmseg's own schedules.
_base_ = ['mmseg::_base_/default_runtime.py', './demo_hooks.py']
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
