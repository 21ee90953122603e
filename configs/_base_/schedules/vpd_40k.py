# VPD's ADE20K recipe (vpd_80k.py) on mmseg's 40k schedule length: the same
# optimiser, warm-up and poly decay over 40k iterations; validation and an
# atomic checkpoint every 4000.
_base_ = ['./vpd_80k.py']
max_iters = 40000
# the +1: see vpd_80k.py
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=1500 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0,
         end=max_iters + 1)
]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(interval=4000))
