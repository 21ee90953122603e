# Demo: semantic segmentation with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (4 classes incl. background), mmseg's Semantic FPN.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
# The data is written to data/demo/seg on first use.
_base_ = ['../_base_/demo_mmseg.py']

num_classes = 4
# generated scenes: 256 to train on, 64 to evaluate (a few MB)
num_train, num_val = 256, 64
image_size = 128  # generated demo images; 1/8 features are 16 x 16
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],  # images to [-1, 1], as the VAE expects
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(image_size, image_size))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        vae_weights={{_base_.demo_vae_dir}},  # made by demo_vae_hook
        # learned prompts (one 32-d token per class): no CLIP model offline
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    # taps [32, 64, 64, 64] + K attention channels at strides 16 and 32
    neck=dict(
        type='FPN',
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        out_channels=32,
        num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[32, 32, 32, 32],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=32,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset_type = 'DemoSegDataset'
data_root = 'data/demo/seg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        num_train=num_train,
        num_val=num_val,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        size=image_size,
        num_train=num_train,
        num_val=num_val,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
# tools/test.py --tta: mmseg's SegTTAModel (from its default_runtime)
# averages the class probabilities over a horizontal flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0., direction='horizontal'),
            dict(type='RandomFlip', prob=1., direction='horizontal')
        ], [dict(type='LoadAnnotations', reduce_zero_label=False)],
                    [dict(type='PackSegInputs')]])
]
