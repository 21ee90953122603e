# VPD on Stable Diffusion 2.1 (512 px, epsilon): ADE20K semantic
# segmentation, VPD's SD1.5 recipe with the SD 2.x U-Net. SD2.x has SD1.5's
# block layout (per-level head widths, linear projections): the same taps,
# channels [320, 640 + K, 1280 + K, 1280] and strides 8-64; the prompts are
# 1024-d, from SD2's own OpenCLIP ViT-H/14 text encoder (the pipeline's
# text_encoder/ subfolder). The 768 px v-prediction model
# 'stabilityai/stable-diffusion-2-1' works the same way: features come from
# one U-Net pass at t=1 without noise, which does not depend on the
# parameterisation (see projects/sd2_sdxl/README.md).
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
sd21 = 'stabilityai/stable-diffusion-2-1-base'
num_classes = 150
model = dict(
    backbone=dict(
        pretrained=sd21,
        class_embeddings=dict(
            class_names='ade20k', text_encoder=sd21, templates='vpd',
            output='pooled')),
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]))
