# Mask2Former (mmseg 1.x) semantic segmentation on ADE20K (150 classes) on
# VPD features: SD1.5 U-Net taps + cross-attention maps of the 150 class
# prompts (VPD's ADE20K conditioning: text adapter, timestep 1) replace the
# ResNet-50. mmseg's recipe otherwise (512x512 crops, 160k iterations, AdamW
# 1e-4 with the backbone at 0.1x, 8 GPUs x 2 images). No published figure
# for this pairing; untrained here.
_base_ = [
    'mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
    '../_base_/models/vpd_sd15.py'
]
custom_imports = dict(
    imports=['mmdet.models', 'mmdiff.models'], allow_failed_imports=False)

num_classes = 150
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5],  # the VAE takes images in [-1, 1]
        std=[127.5, 127.5, 127.5],
        test_cfg=dict(size_divisor=64)),
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names='ade20k', text_encoder={{_base_.clip_l14}},
            templates='vpd', output='pooled'),
        text_adapter=True,
        use_attn=True,
        attn_grad=False,
        timestep=1),
    decode_head=dict(
        # SD1.5 taps + the K = num_classes attention maps at 1/16 and 1/32
        in_channels=[
            c + num_classes * (i in _base_.sd15_attn_taps)
            for i, c in enumerate(_base_.sd15_channels)
        ],
        strides={{_base_.sd15_strides}}))
