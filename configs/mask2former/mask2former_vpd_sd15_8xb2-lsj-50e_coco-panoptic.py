# Mask2Former (mmdet 3.x) panoptic segmentation on COCO (80 things + 53
# stuff) on VPD features: the SD1.5 U-Net taps + cross-attention maps of the
# 133 class prompts replace the ResNet-50. Everything else is mmdet's own
# recipe (LSJ 1024, 50 epochs as 368750 iterations, AdamW 1e-4 with the
# backbone at 0.1x, 8 GPUs x 2 images). Untrained here: no figure is claimed
# (configs/vpd/README.md, "Mask2Former").
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py',
    '../_base_/models/vpd_sd15.py'
]
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)

num_things_classes = 80
num_stuff_classes = 53
num_classes = num_things_classes + num_stuff_classes
# VPD taps finest-first at strides 8-64 (no 1/4 level): the pixel decoder's
# mask features come from the 1/8 tap, its deformable encoder reads 1/16-1/64.
# With use_attn the 1/16 and 1/32 taps carry the K = 133 attention maps.
in_channels = [
    c + num_classes * (i in _base_.sd15_attn_taps)
    for i, c in enumerate(_base_.sd15_channels)
]
image_size = (1024, 1024)
batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0,
         pad_mask=True, mask_pad_value=0, pad_seg=True, seg_pad_value=255)
]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5],  # the VAE takes images in [-1, 1]
        std=[127.5, 127.5, 127.5],
        pad_size_divisor=64,
        batch_augments=batch_augments),
    backbone=dict(
        _delete_=True,
        type='mmdiff.VPD',
        pretrained={{_base_.sd15}},
        class_embeddings=dict(
            class_names='coco_panoptic', text_encoder={{_base_.clip_l14}},
            templates='vpd', output='pooled'),
        use_attn=True),
    panoptic_head=dict(
        in_channels=in_channels, strides={{_base_.sd15_strides}}))
