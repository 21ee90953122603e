# The panoptic demo's few-minute CPU schedule: 300 iterations, AdamW at the
# full learning rate (the U-Net is random here), 30 warm-up iterations, poly
# decay, mmdet's no-decay keys for the queries. It replaces the schedule of
# mmdet's panoptic recipe, which the demo data base inherits: so it sits on
# that base (mmengine refuses two `_base_` files that set the same key).
_base_ = ['../datasets/demo_coco_panoptic.py']
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
            'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
            'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(_delete_=True, type='mmdiff.AtomicCheckpointHook',
                    by_epoch=False, interval=max_iters // 2,
                    max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
