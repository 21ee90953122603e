# VPD on SDXL base 1.0: ADE20K semantic segmentation with VPD's recipe.
# SDXL's U-Net has 3 levels (no attention at the finest, transformer depth
# 1/2/10): three taps, up_blocks.2 (320 ch, 1/8), up_blocks.1.attentions.1
# (640, 1/16) and up_blocks.0.attentions.1 (1280, 1/32), the last two with
# the K-channel cross-attention maps. Prompts are 2048-d: the class prompts
# through CLIP ViT-L/14 (768) and ViT-bigG/14 (1280), concatenated, as SDXL
# concatenates its two encoders. SDXL's added conditioning is set here:
# `text_embeds` (pooled prompt, 1280-d; None = zeros, SDXL's empty prompt)
# and `time_ids` ('input_size': (H, W, 0, 0, H, W) of the padded input).
# U-Net 2.6 B parameters: full fine-tuning with AdamW needs ~42 GB of model
# state per GPU; keep the VAE in fp32 (SDXL's VAE overflows in fp16).
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
sdxl = 'stabilityai/stable-diffusion-xl-base-1.0'
num_classes = 150
model = dict(
    backbone=dict(
        pretrained=sdxl,
        class_embeddings=dict(
            class_names='ade20k',
            text_encoder=[
                'openai/clip-vit-large-patch14',
                'laion/CLIP-ViT-bigG-14-laion2B-39B-b160k'
            ],
            templates='vpd',
            output='pooled'),
        text_embeds=None,
        time_ids='input_size',
        grad_checkpointing=True),
    neck=dict(
        in_channels=[320, 640 + num_classes, 1280 + num_classes],
        num_outs=3),
    decode_head=dict(
        in_channels=[256, 256, 256],
        in_index=[0, 1, 2],
        feature_strides=[8, 16, 32]))
