# VPD monocular depth on KITTI (Eigen split): mmseg's DepthEstimator +
# VPDDepthHead on SD1.5 features, the NYU recipe with KITTI's range (80 m)
# and 352x704 crops (VPD published no KITTI figure; peers report RMSE ~2.0).
# Data: KITTI raw images under data/kitti/raw, annotated depth under
# data/kitti/gt_depth, and the Eigen split files in data/kitti/.
# Preparation (layout, split files, converter): docs/dataset_prepare.md.
# Evaluation: inside the Garg crop of the KITTI benchmark window, 1e-3..80 m
# (mmdiff.evaluation.KITTIDepthMetric). VPD's depth code (GLPDepth's) offers
# garg_crop/eigen_crop with do_kb_crop=1 and ships no KITTI script; GLPDepth
# reports KITTI with --garg_crop (github.com/vinvino02/GLPDepth @ a048528,
# README), so Garg is the crop used here.
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
