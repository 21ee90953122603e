# NEEDS GPUs (NCCL). mmengine FlexibleRunner + FSDP (FSDPStrategy) for the
# SD1.5 VPD configs: parameters, gradients and AdamW states are sharded over
# the GPUs (FULL_SHARD); fp32, as VPD trains. bf16 compute (less memory,
# not VPD's recipe) is the named option ./fsdp_bf16.py, used in this file's
# place.
# Use as an overlay after a VPD config, e.g.
#   _base_ = ['./vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
#             '../_base_/strategies/fsdp.py']
#   bash tools/dist_train.sh CONFIG 8
# Only runner_type and strategy are set here (mmengine refuses keys set by
# two bases); env_cfg keeps the host default backend, NCCL.
# What fits where: docs/distributed.md.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        # diffusers resnet/transformer blocks as units; NOT size-based: the
        # backbone cuts the U-Net forward short after its last tap, and a
        # unit around a cut-short module (U-Net, up block) breaks backward
        auto_wrap_policy=dict(
            type='mmdiff.diffusion_block_wrap_policy',
            min_num_params=int(1e7)),
        # one flat parameter may mix the frozen VAE / U-Net lr_mult groups
        use_orig_params=True,
        sharding_strategy='FULL_SHARD'),
    # one consolidated checkpoint (rank 0), loadable without FSDP
    state_dict_cfg='full')
