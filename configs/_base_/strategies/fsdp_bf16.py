# NEEDS GPUs (NCCL). ./fsdp.py with bf16 compute and fp32 reductions
# (fp32 shards): less memory, NOT VPD's recipe (VPD trains fp32). Use it in
# place of fsdp.py:
#   _base_ = ['./vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
#             '../_base_/strategies/fsdp_bf16.py']
_base_ = ['./fsdp.py']
strategy = dict(
    model_wrapper=dict(
        mixed_precision=dict(
            param_dtype='bfloat16',
            reduce_dtype='float32',
            buffer_dtype='float32')))
