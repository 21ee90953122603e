# The generated segmentation demo scenes (mmdiff.datasets.DemoSegDataset, 4
# classes incl. background; demo_mmseg_loaders.py), written to data/demo/seg
# on first use. Scored with mmseg's IoUMetric.
_base_ = ['./demo_mmseg_loaders.py']
dataset_type = 'DemoSegDataset'
data_root = 'data/demo/seg'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
# tools/test.py --tta: mmseg's SegTTAModel (from its default_runtime)
# averages the class probabilities over a horizontal flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[[
            dict(type='RandomFlip', prob=0., direction='horizontal'),
            dict(type='RandomFlip', prob=1., direction='horizontal')
        ], [dict(type='LoadAnnotations', reduce_zero_label=False)],
                    [dict(type='PackSegInputs')]])
]
