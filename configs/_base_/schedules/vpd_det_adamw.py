# The optimiser of the VPD detection / instance segmentation configs, as a
# variable (`optim_wrapper = {{_base_.det_optim_wrapper}}`): those configs
# inherit a whole mmdet recipe, which already sets `optim_wrapper`, and
# mmengine forbids two `_base_` files that set the same key.
# AdamW with the U-Net at 0.1x, VPD's segmentation practice.
det_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'backbone.unet': dict(lr_mult=0.1)}),
    clip_grad=dict(max_norm=1.0))
