# NEEDS 8 GPUs (NCCL): VPD SD1.5 ADE20K recipe (8 x 2 images, 80k iters)
# trained with FSDP (FlexibleRunner); same model and schedule as
# vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py, fp32 as VPD. bf16 (less
# memory, not VPD's recipe): ../_base_/strategies/fsdp_bf16.py in place of
# fsdp.py. Memory: docs/distributed.md.
_base_ = [
    './vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
    '../_base_/strategies/fsdp.py'
]
