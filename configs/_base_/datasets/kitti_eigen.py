# KITTI depth, Eigen split (docs/dataset_prepare.md: layout, split files,
# converter): raw images under data/kitti/raw, annotated depth (png,
# metres x 256) under data/kitti/gt_depth, 352x704 random crops, evaluated
# inside the Garg crop of the KITTI benchmark window, 1e-3..80 m
# (mmdiff.evaluation.KITTIDepthMetric). It replaces the data of the VPD NYU
# depth config, which the KITTI config builds on, so it sits on that config
# (mmengine refuses two `_base_` files that set the same key).
_base_ = ['../../vpd/vpd_sd15_4xb8-25k_nyu-480x480.py']
crop_size = (352, 704)
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
