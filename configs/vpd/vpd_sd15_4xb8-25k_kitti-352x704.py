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
_base_ = [
    './vpd_sd15_4xb8-25k_nyu-480x480.py'
]
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.kitti_depth',
             'mmdiff.evaluation'],
    allow_failed_imports=False)

crop_size = (352, 704)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        # one prompt for every image (KITTI has no scene labels)
        class_embed_select=False,
        class_embeddings=dict(class_names=['street scene'],
                              templates='imagenet80'),
        pad_shape=(384, 768)),
    decode_head=dict(max_depth=80, fmap_border=(1, 2)),
    test_cfg=dict(mode='slide_flip', crop_size=crop_size,
                  stride=(176, 176)))

dataset_type = 'KITTIDepthDataset'
data_root = 'data/kitti'
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / 256),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / 256),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='kitti_eigen_train_files_with_gt.txt',
        data_prefix=dict(img_path='raw', depth_map_path='gt_depth'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        test_mode=True,
        ann_file='kitti_eigen_test_files_with_gt.txt',
        data_prefix=dict(img_path='raw', depth_map_path='gt_depth'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='KITTIDepthMetric', min_depth_eval=1e-3, max_depth_eval=80.0,
    crop_type='garg_crop', kb_crop=True)
test_evaluator = val_evaluator
