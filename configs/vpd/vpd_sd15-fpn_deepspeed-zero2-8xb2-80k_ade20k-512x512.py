# NEEDS 8 GPUs and deepspeed: VPD SD1.5 ADE20K recipe (8 x 2 images, 80k
# iters) with DeepSpeed ZeRO-2 (FlexibleRunner); same model and schedule as
# vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py, fp32 as VPD. bf16 (less
# memory, not VPD's recipe): ../_base_/strategies/deepspeed_zero2_bf16.py in place of
# deepspeed_zero2.py. Memory: docs/distributed.md.
_base_ = [
    './vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
    '../_base_/strategies/deepspeed_zero2.py'
]
# DeepSpeed steps the optimizer; AdamW and the U-Net lr x0.1 are kept
optim_wrapper = dict(type='DeepSpeedOptimWrapper')
