# VPD monocular depth on NYUv2: mmseg's VPD recipe (DepthEstimator +
# VPDDepthHead) with mmdiff's backbone; one CLIP prompt per image, picked by
# the NYU scene in the file name with mmseg's rule (its checkpoint's; VPD's
# checkpoint: ..._vpd-scenes.py). Needs `make install-datasets` (Albu).
# Source, scene rules, reported figures: configs/vpd/README.md.
_base_ = [
    'mmseg::vpd/vpd_sd_4xb8-25k_nyu-480x480.py', '../_base_/models/vpd_sd15.py',
    '../_base_/runtime/mmdiff_hooks.py'
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
