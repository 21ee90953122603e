# NEEDS GPUs and deepspeed. ./deepspeed_zero2.py with bf16 parameters
# (fp32 master weights, moments and gradients partitioned): less memory,
# NOT VPD's recipe (VPD trains fp32). Use it in place of deepspeed_zero2.py:
#   _base_ = ['./vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py',
#             '../_base_/strategies/deepspeed_zero2_bf16.py']
#   optim_wrapper = dict(type='DeepSpeedOptimWrapper')
_base_ = ['./deepspeed_zero2.py']
strategy = dict(
    bf16=dict(enabled=True),
    # images enter the bf16 model in bf16 (the VAE casts them anyway)
    inputs_to_half=['inputs'])
