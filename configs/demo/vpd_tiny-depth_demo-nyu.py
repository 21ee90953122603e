# Demo: monocular depth with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (NYU layout, depth in mm, scene name in the file
# name), mmseg's DepthEstimator + VPDDepthHead, as in mmseg's VPD NYU config.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = ['../_base_/demo_mmseg.py']

# generated scenes: 256 to train on, 64 to evaluate (a few MB)
num_train, num_val = 256, 64
image_size = 128  # the head needs the 1/64 map to be half the 1/32 map
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,
    size=(image_size, image_size),
    # test images of any size: VPDDepthHead upsamples the 1/64 map to the
    # 1/32 one, so pad to a multiple of 64 (cropped off the prediction)
    test_cfg=dict(size_divisor=64))
model = dict(
    type='DepthEstimator',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmdiff.VPD',
        pretrained=None,
        unet_cfg={{_base_.tiny_unet_cfg}},
        vae_cfg={{_base_.tiny_vae_cfg}},
        vae_weights={{_base_.demo_vae_dir}},  # made by demo_vae_hook
        # one learned 32-d prompt per NYU scene (27), picked per image from
        # the scene in the file name; the mean prompt when it is unknown
        class_embeddings=dict(num_classes=27, dim=32),
        class_embed_select=True,
        use_attn=False),
    decode_head=dict(
        type='VPDDepthHead',
        in_channels=[32, 64, 64, 64],
        max_depth=10,
        embed_dim=16,
        feature_dim=128,
        num_deconv_filters=(16, 16, 16),
        fmap_border=0),
    test_cfg=dict(mode='whole'))

dataset_type = 'DemoDepthDataset'
data_root = 'data/demo/depth'
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
# test_pipeline is what mmseg's inference_model runs on an image alone (it
# drops LoadAnnotations only); evaluation loads the ground truth as well.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3),
    dict(type='PackSegInputs', meta_keys=meta_keys)
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
            img_path='images/train', depth_map_path='annotations/train'),
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
        test_mode=True,
        data_prefix=dict(
            img_path='images/test', depth_map_path='annotations/test'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='DepthMetric', min_depth_eval=0.001, max_depth_eval=10.0)
test_evaluator = val_evaluator
# tools/test.py --tta: the depth maps of the image and its horizontal flip
# averaged (mmseg has no depth TTA model; VPD's NYU test flips too)
tta_model = dict(type='mmdiff.DepthTTAModel')
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0., direction='horizontal'),
            dict(type='RandomFlip', prob=1., direction='horizontal')
        ], [dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3)],
                    [dict(type='PackSegInputs', meta_keys=meta_keys)]])
]
