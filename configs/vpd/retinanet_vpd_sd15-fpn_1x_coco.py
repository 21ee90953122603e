# RetinaNet with FPN on VPD features (SD1.5 taps + cross-attention maps of
# the 80 COCO class prompts), COCO 1x. The taps' strides 8-64 plus an extra
# 1/128 level are RetinaNet's usual P3-P7. Shared settings:
# configs/_base_/models/vpd_sd15.py.
_base_ = [
    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
    '../_base_/models/vpd_sd15.py', '../_base_/schedules/vpd_det_adamw.py',
    '../_base_/runtime/mmdiff_hooks.py'
]

model = dict(
    data_preprocessor={{_base_.det_data_preprocessor}},
    backbone={{_base_.coco_backbone}},
    neck=dict(
        in_channels={{_base_.coco_neck_in_channels}},
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5))
optim_wrapper = {{_base_.det_optim_wrapper}}
# atomic checkpoints (no truncated file after a kill)
default_hooks = dict(checkpoint=dict(type='mmdiff.AtomicCheckpointHook'))
