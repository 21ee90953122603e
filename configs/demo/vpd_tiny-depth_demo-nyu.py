# Demo: monocular depth with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (NYU layout, depth in mm, scene name in the file
# name), mmseg's DepthEstimator + VPDDepthHead, as in mmseg's VPD NYU config.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = [
    '../_base_/models/vpd_tiny.py', '../_base_/datasets/demo_depth.py',
    '../_base_/schedules/demo_600it.py', '../_base_/runtime/demo_runtime.py'
]
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=0,
    size=(_base_.image_size, _base_.image_size),
    # test images of any size: VPDDepthHead upsamples the 1/64 map to the
    # 1/32 one, so pad to a multiple of 64 (cropped off the prediction)
    test_cfg=dict(size_divisor=64))
model = dict(
    type='DepthEstimator',
    data_preprocessor=data_preprocessor,
    # one learned 32-d prompt per NYU scene (27), picked per image from
    # the scene in the file name; the mean prompt when it is unknown
    backbone=dict(
        _base_.demo_backbone,
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
# tools/test.py --tta: the depth maps of the image and its horizontal flip
# averaged (mmseg has no depth TTA model; VPD's NYU test flips too)
tta_model = dict(type='mmdiff.DepthTTAModel')
# the runtime's hooks and the demo VAE's (made before the weights are read)
custom_hooks = [_base_.demo_vae_hook, *_base_.custom_hooks]
