# VPD semantic segmentation: SD1.5 U-Net taps + cross-attention maps of the K
# class prompts -> FPN -> FPNHead (Semantic FPN), with VPD's ADE20K recipe
# (source: configs/vpd/README.md): FPNHead channels 256, slide test 512/341.
# Its optimiser and schedule:
# ../schedules/vpd_80k.py. A config using it adds a data set and sets
# `num_classes`, the class names of the prompts and the neck's in_channels.
_base_ = ['./vpd_sd15.py']

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],  # the VAE takes images in [-1, 1]
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(512, 512))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names=None,  # set by the data set config
            text_encoder={{_base_.clip_l14}},
            templates='vpd',
            output='pooled'),
        text_adapter=True,
        use_attn=True,
        attn_grad=False,
        timestep=1),
    neck=dict(
        type='FPN',
        in_channels=None,  # [320, 640 + K, 1280 + K, 1280]
        out_channels=256,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[256, 256, 256, 256],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=256,
        dropout_ratio=0.1,
        num_classes=None,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))
