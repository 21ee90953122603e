# Marigold-style input on KITTI (SD 2): image latent concatenated with the
# noisy depth latent, conv_in widened 4 -> 8 with its weights duplicated and
# halved (prs-eth/Marigold@b1dffaaa3f7a2fe406b3bb9dd3c358b30da66060
# src/trainer/marigold_depth_trainer.py, _replace_unet_conv_in), affine-
# invariant targets normalised with the 2 %/98 % quantiles
# (config/train_marigold_depth.yaml: scale_shift_depth, min_max_quantile
# 0.02), latent-space MSE, Adam lr 3e-5, effective batch 32; one step at
# t=999 with x0 prediction (Lotus-G's one-step reformulation,
# EnVision-Research/Lotus@b737e12 train_lotus_g.py) instead of Marigold's
# multi-step v-prediction with multi-resolution noise.
# Differences: Marigold and Lotus train on Hypersim + Virtual KITTI and test
# KITTI zero-shot; this config fine-tunes on KITTI (mmdiff's Eigen split
# data pipeline from configs/vpd/vpd_sd15_4xb8-25k_kitti-352x704.py).
# The sources' reported KITTI figures are in their papers only (Marigold:
# https://arxiv.org/abs/2312.02145; Lotus: https://arxiv.org/html/2409.18124v5;
# the repositories' READMEs at the commits above carry none): not quoted
# (not readable as text offline; nothing written from memory) and not
# reproduced here.
_base_ = ['mmdiff::vpd/vpd_sd15_4xb8-25k_kitti-352x704.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.kitti_depth', 'mmdiff.evaluation',
        'projects.GenerativeDepth.generative_depth'
    ],
    allow_failed_imports=False)
model = dict(
    _delete_=True,
    type='mmdiff.GenerativeDepth',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=0,
        size=(352, 704)),
    pretrained='stabilityai/stable-diffusion-2',
    input_mode='concat_noise',
    conv_in_init='duplicate_halve',
    timestep=999,
    target='depth',
    depth_mode='affine',
    max_depth=80.,
    loss='latent_mse',
    grad_checkpointing=True,
    test_cfg=dict(align=True))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3e-5),
    clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=100),
    dict(type='ExponentialLR', gamma=0.01**(1 / 25000), by_epoch=False,
         begin=100, end=25000)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=30000,
                 val_interval=3000)
train_dataloader = dict(batch_size=4)
