# VPD monocular depth on NYUv2, mmseg's VPD recipe with mmdiff's backbone:
# mmseg's DepthEstimator + VPDDepthHead, 480x480 crops padded to 512,
# slide_flip test, U-Net lr x0.01, SiLog loss, 25k iters, 4 GPUs x 8 images.
# mmseg reports RMSE 0.253 / d1 0.964 / AbsRel 0.069 for this recipe.
# One prompt per image, chosen by the NYU scene in the file name (27 scenes;
# the mean prompt for an unknown scene) with mmseg's rule (the name before
# the first digit), the rule mmseg's checkpoint was trained with; VPD's own
# NYU checkpoint needs VPD's rule: vpd_sd15_4xb8-25k_nyu-480x480_vpd-scenes.py
# (mmdiff.datasets.nyu_scenes explains both). The prompts are CLIP ViT-L/14
# pooled features averaged over the 80 CLIP ImageNet templates, length 20.
# The training pipeline is mmseg's and uses Albu (albumentations): install
# it with `make install-datasets` (pinned, no second OpenCV; see
# docs/dataset_prepare.md).
_base_ = [
    'mmseg::vpd/vpd_sd_4xb8-25k_nyu-480x480.py', '../_base_/models/vpd_sd15.py',
    '../_base_/mmdiff_hooks.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.nyu_scenes'],
    allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names='nyu_scenes',
            text_encoder={{_base_.clip_l14}},
            templates='imagenet80',
            output='pooled',
            max_length=20),
        class_embed_select=True,
        use_attn=False,
        # mmseg/VPD pad 480 to 512 and keep the padded maps; the head's
        # fmap_border=(1, 1) trims them.
        pad_shape=512),
    decode_head=dict(in_channels={{_base_.sd15_channels}}))
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        bias_decay_mult=0,
        force_default_settings=True,
        custom_keys={'backbone.unet': dict(lr_mult=0.01)}))
scene_rule = 'mmseg'
train_dataloader = dict(
    dataset=dict(type='NYUSceneDataset', scene_rule=scene_rule))
val_dataloader = dict(
    dataset=dict(type='NYUSceneDataset', scene_rule=scene_rule))
test_dataloader = val_dataloader
# atomic checkpoints (no truncated file after a kill)
default_hooks = dict(checkpoint=dict(type='mmdiff.AtomicCheckpointHook'))
