# Runtime of the diffusion-pretraining configs (mmdiff.DiffusionPretrainer):
# mmseg's scope for the image pipelines (ResizeShortestEdge, RandomCrop,
# PackSegInputs), no validation or test loop (no labels), iteration-based
# logs, seed 0. Their schedules carry the log/checkpoint hooks.
default_scope = 'mmseg'
val_dataloader = val_cfg = val_evaluator = None
test_dataloader = test_cfg = test_evaluator = None
visualizer = dict(
    type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
