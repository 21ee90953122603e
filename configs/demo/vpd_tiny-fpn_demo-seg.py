# Demo: semantic segmentation with a tiny random-init SD-shaped U-Net on the
# generated demo scenes (4 classes incl. background), mmseg's Semantic FPN.
# Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
# The data is written to data/demo/seg on first use.
_base_ = [
    '../_base_/models/tiny-fpn_seg.py', '../_base_/datasets/demo_seg.py',
    '../_base_/schedules/demo_600it.py', '../_base_/runtime/demo_runtime.py'
]
num_classes = 4
model = dict(
    # learned prompts (one 32-d token per class): no CLIP model offline
    backbone=dict(
        _base_.demo_backbone,
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    # taps [32, 64, 64, 64] + K attention channels at strides 16 and 32
    neck=dict(in_channels=[32, 64 + num_classes, 64 + num_classes, 64]),
    decode_head=dict(num_classes=num_classes))
# the runtime's hooks and the demo VAE's (made before the weights are read)
custom_hooks = [_base_.demo_vae_hook, *_base_.custom_hooks]
