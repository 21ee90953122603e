# MetaPromptsVPD on SD1.5 for ADE20K, a LIGHTER VARIANT of Meta Prompts on
# mmdiff's VPD backbone (not the source's model, which is
# meta-prompts_sd15-upernet_8xb1-80k_ade20k-512x512.py): 64 learned meta
# prompts, 3 refinement loops with a learned timestep delta per loop,
# prompt re-weighted features, UPerHead on the four taps, VPD's schedule.
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
custom_imports = dict(
    imports=['mmdiff.models', 'projects.MetaPrompts.meta_prompts'],
    allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
num_classes = 150
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdiff.MetaPromptsVPD',
        pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
        num_prompts=64,
        num_loops=3,
        learned_timestep=True,
        reweight=True,
        timestep=1,
        grad_checkpointing=True),  # 3 U-Net passes per image
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=_base_.sd15_channels,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=512,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
