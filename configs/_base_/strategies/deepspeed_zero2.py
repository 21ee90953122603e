# NEEDS GPUs and deepspeed (bash tools/setup_env.sh --deepspeed). mmengine
# FlexibleRunner + DeepSpeed ZeRO stage 2: AdamW states and gradients are
# partitioned over the GPUs, parameters replicated; fp32, as VPD trains.
# bf16 (less memory, not VPD's recipe) is the named option
# ./deepspeed_zero2_bf16.py, used in this file's place.
# Use as an overlay after a VPD config, e.g.
#   _base_ = ['./vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
#             '../_base_/strategies/deepspeed_zero2.py']
#   bash tools/dist_train.sh CONFIG 8
# Only runner_type and strategy are set here (mmengine refuses keys set by
# two bases): the config using it also sets
#   optim_wrapper = dict(type='DeepSpeedOptimWrapper')
# (DeepSpeed steps the optimizer; optimizer and paramwise_cfg are kept).
# What fits where: docs/distributed.md.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=int(2e8),
        reduce_scatter=True,
        reduce_bucket_size=int(2e8),
        overlap_comm=True,
        contiguous_gradients=True,
        cpu_offload=False),
    gradient_accumulation_steps=1)
