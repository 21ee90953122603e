# Demo: panoptic segmentation with a tiny random-init SD-shaped U-Net on the
# generated COCO-panoptic demo scenes (3 thing classes: circle, square,
# triangle; 1 stuff class: background), mmdet's Mask2Former (shrunk) on the
# VPD taps + class cross-attention maps, scored with mmdet's
# CocoPanopticMetric (PQ, PQ_th, PQ_st); minutes on 2 CPU cores:
#   python tools/train.py <this file>
# Chance level: python tools/misc/make_demo_data.py --tasks panoptic \
#   --size 128 --num-train 256 --num-val 64 --chance
_base_ = [
    '../_base_/schedules/demo_m2f_300it.py',  # on the demo data base
    '../_base_/models/mask2former_tiny.py', '../_base_/models/vpd_tiny.py',
    '../_base_/runtime/demo_hooks.py'
]
num_things_classes, num_stuff_classes = 3, 1
num_classes = num_things_classes + num_stuff_classes
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
        pad_size_divisor=64,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=_base_.image_size,
                 img_pad_value=0, pad_mask=True, mask_pad_value=0,
                 pad_seg=True, seg_pad_value=255)
        ]),
    backbone=dict(
        _base_.demo_backbone, _delete_=True,
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    # VPD taps finest-first [32, 64, 64, 64] at strides 8-64; the 1/16 and
    # 1/32 taps carry the K = num_classes attention maps more
    panoptic_head=dict(
        _base_.mask2former_tiny_head,
        in_channels=[32, 64 + num_classes, 64 + num_classes, 64],
        strides=[8, 16, 32, 64],
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(instance_on=False, max_per_image=16))
# the runtime's hooks and the demo VAE's (made before the weights are read)
custom_hooks = [_base_.demo_vae_hook, *_base_.custom_hooks]
