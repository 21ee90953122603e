# VPD monocular depth on KITTI (Eigen split): the NYU recipe with KITTI's
# range (80 m) and 352x704 crops, evaluated inside the Garg crop
# (KITTIDepthMetric; why: configs/vpd/README.md). Data layout and split
# files: docs/dataset_prepare.md.
_base_ = ['../_base_/datasets/kitti_eigen.py']  # on the NYU config
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.kitti_depth',
             'mmdiff.evaluation'],
    allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(size=_base_.crop_size),
    backbone=dict(
        # one prompt for every image (KITTI has no scene labels)
        class_embed_select=False,
        class_embeddings=dict(class_names=['street scene'],
                              templates='imagenet80'),
        pad_shape=(384, 768)),
    decode_head=dict(max_depth=80, fmap_border=(1, 2)),
    test_cfg=dict(mode='slide_flip', crop_size=_base_.crop_size,
                  stride=(176, 176)))
