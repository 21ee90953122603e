# Semantic FPN (mmseg) for the taps of the demos' tiny VPD backbone, sized
# for the 128x128 demo scenes, on the demos' backbone (vpd_tiny.py). A config
# using it sets the backbone (`demo_backbone`) with its conditioning,
# num_classes and the neck's in_channels (taps [32, 64, 64, 64] + K attention
# channels at strides 16 and 32 with use_attn).
_base_ = ['./vpd_tiny.py']
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[127.5, 127.5, 127.5],  # images to [-1, 1], as the VAE expects
    std=[127.5, 127.5, 127.5],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(128, 128))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    neck=dict(type='FPN', in_channels=None, out_channels=32, num_outs=4),
    decode_head=dict(
        type='FPNHead',
        in_channels=[32, 32, 32, 32],
        in_index=[0, 1, 2, 3],
        feature_strides=[8, 16, 32, 64],
        channels=32,
        dropout_ratio=0.1,
        num_classes=None,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
