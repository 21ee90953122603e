# The mmdet demos' few-minute CPU schedule on mmdet's 1x schedule file: 400
# iterations (iteration-based), AdamW at the full learning rate (the U-Net is
# random here), 40 warm-up iterations, poly decay.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py']
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-3, weight_decay=1e-3),
    clip_grad=dict(max_norm=5.0))
max_iters = 400
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=40),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=40,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
