# Runtime of the mmdet demos: mmdet's runtime, iteration-based logs (a line
# every 10 iterations), atomic checkpoints (two kept; the config sets the
# interval), gloo, and the demo hooks (demo_hooks.py). No model.
_base_ = ['mmdet::_base_/default_runtime.py', './demo_hooks.py']
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(type='mmdiff.AtomicCheckpointHook', by_epoch=False,
                    max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
