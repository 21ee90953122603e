# Demo: panoptic segmentation with a tiny random-init SD-shaped U-Net on the
# generated COCO-panoptic demo scenes (3 thing classes: circle, square,
# triangle; 1 stuff class: background), mmdet's Mask2Former (deformable
# pixel decoder + masked-attention decoder, shrunk) on the VPD taps + class
# cross-attention maps, scored with mmdet's CocoPanopticMetric (PQ, PQ_th,
# PQ_st). Runs on 2 CPU cores in minutes:  python tools/train.py <this file>
# Chance level on the same split: python tools/misc/make_demo_data.py \
#   --tasks panoptic --size 128 --num-train 256 --num-val 64 --chance
_base_ = [
    '../_base_/datasets/demo_coco_panoptic.py', '../_base_/demo_hooks.py'
]

num_things_classes = 3
num_stuff_classes = 1
num_classes = num_things_classes + num_stuff_classes
feat = 64
# VPD taps finest-first [32, 64, 64, 64] at strides 8-64; with use_attn the
# 1/16 and 1/32 taps carry K = num_classes attention maps more.
in_channels = [32, 64 + num_classes, 64 + num_classes, 64]
batch_augments = [
    dict(type='BatchFixedSizePad', size=_base_.image_size, img_pad_value=0,
         pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
        pad_size_divisor=64, batch_augments=batch_augments),
    backbone=dict(
        _base_.demo_backbone, _delete_=True,
        class_embeddings=dict(num_classes=num_classes, dim=32),
        use_attn=True),
    panoptic_head=dict(
        in_channels=in_channels,
        strides=[8, 16, 32, 64],
        feat_channels=feat,
        out_channels=feat,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=16,
        pixel_decoder=dict(
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                    ffn_cfg=dict(embed_dims=feat,
                                 feedforward_channels=4 * feat))),
            positional_encoding=dict(num_feats=feat // 2)),
        positional_encoding=dict(num_feats=feat // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4),
                ffn_cfg=dict(embed_dims=feat,
                             feedforward_channels=4 * feat))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(instance_on=False, max_per_image=16))

# The U-Net is random here, so it trains at the full learning rate.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'query_embed': dict(lr_mult=1.0, decay_mult=0.0),
            'query_feat': dict(lr_mult=1.0, decay_mult=0.0),
            'level_embed': dict(lr_mult=1.0, decay_mult=0.0),
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=1.0))
max_iters = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=30),
    dict(type='PolyLR', power=1.0, by_epoch=False, begin=30,
         end=max_iters, eta_min=0.0)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
    val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(_delete_=True, type='mmdiff.AtomicCheckpointHook',
                    by_epoch=False, interval=max_iters // 2,
                    max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
