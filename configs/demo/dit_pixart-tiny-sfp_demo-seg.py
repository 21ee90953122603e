# Demo: semantic segmentation with a tiny random-init PixArt-shaped diffusion
# transformer (mmdiff.DiTBackbone) on the generated demo scenes (4 classes
# incl. background): its last block's tokens (+ its text->image maps of one
# learned token per class) at stride 16, ViTDet's simple feature pyramid
# (strides 4-32) and mmseg's Semantic FPN head.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
_base_ = [
    '../_base_/models/tiny-fpn_seg.py', '../_base_/datasets/demo_seg.py',
    '../_base_/schedules/demo_600it.py', '../_base_/runtime/demo_runtime.py',
    '../_base_/models/dit_tiny.py'
]
num_classes = 4
model = dict(
    backbone=dict(
        type='mmdiff.DiTBackbone',
        family='pixart',
        pretrained=None,
        transformer_cfg=_base_.tiny_pixart_cfg,
        vae_cfg=_base_.tiny_vae_cfg,
        vae_weights=_base_.demo_vae_dir,  # made by demo_vae_hook
        taps=(-1, ),
        attn_blocks=(-1, ),
        conditioner=dict(
            type='ClassPrompts',
            class_embeddings=dict(num_classes=num_classes, dim=32))),
    # 24 hidden channels + one attention map per class token
    neck=dict(
        _delete_=True,
        type='mmdiff.SimpleFeaturePyramid',
        in_channels=[24 + num_classes],
        out_channels=32),
    decode_head=dict(num_classes=num_classes, feature_strides=[4, 8, 16,
                                                                32]))
# the runtime's hooks and the demo VAE's (made before the weights are read)
custom_hooks = [_base_.demo_vae_hook, *_base_.custom_hooks]
