# The generated depth demo scenes (mmdiff.datasets.DemoDepthDataset: NYU
# layout, depth in mm, scene name in the file name; demo_mmseg_loaders.py),
# written to data/demo/depth on first use. Scored with mmseg's DepthMetric
# (0.001-10 m).
_base_ = ['./demo_mmseg_loaders.py']
dataset_type = 'DemoDepthDataset'
data_root = 'data/demo/depth'
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')
load_depth = dict(type='LoadDepthAnnotation', depth_rescale_factor=1e-3)
train_pipeline = [
    dict(type='LoadImageFromFile'), load_depth,
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
# test_pipeline is what mmseg's inference_model runs on an image alone (it
# drops LoadAnnotations only); evaluation loads the ground truth as well.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
val_pipeline = [
    dict(type='LoadImageFromFile'), load_depth,
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train', depth_map_path='annotations/train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        test_mode=True,
        data_prefix=dict(
            img_path='images/test', depth_map_path='annotations/test'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='DepthMetric', min_depth_eval=0.001, max_depth_eval=10.0)
test_evaluator = val_evaluator
# tools/test.py --tta with the config's tta_model (mmdiff.DepthTTAModel: the
# depth maps of the image and its horizontal flip averaged)
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0., direction='horizontal'),
            dict(type='RandomFlip', prob=1., direction='horizontal')
        ], [load_depth], [dict(type='PackSegInputs', meta_keys=meta_keys)]])
]
