# Mask2Former (mmdet 3.x) instance segmentation on COCO (80 things) on VPD
# features (SD1.5 U-Net taps + cross-attention maps of the 80 class prompts)
# instead of the ResNet-50; mmdet's recipe otherwise (LSJ 1024, 50 epochs).
# No published figure for this pairing; untrained here.
_base_ = [
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
    '../_base_/models/vpd_sd15.py'
]
custom_imports = dict(imports=['mmdiff.models'], allow_failed_imports=False)

num_classes = 80
image_size = (1024, 1024)
batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0,
         pad_mask=True, mask_pad_value=0, pad_seg=False)
]
model = dict(
    data_preprocessor=dict(
        mean=[127.5, 127.5, 127.5],  # the VAE takes images in [-1, 1]
        std=[127.5, 127.5, 127.5],
        pad_size_divisor=64,
        batch_augments=batch_augments),
    backbone={{_base_.coco_backbone}},
    panoptic_head=dict(
        in_channels={{_base_.coco_neck_in_channels}},
        strides={{_base_.sd15_strides}}))
