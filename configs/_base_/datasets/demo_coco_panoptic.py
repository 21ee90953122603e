# The generated COCO-panoptic demo scenes (mmdiff.datasets.
# DemoCocoPanopticDataset: 3 thing classes, 1 stuff class, 128x128), written
# to data/demo/panoptic on first use, scored with mmdet's CocoPanopticMetric,
# set on mmdet's Mask2Former panoptic recipe. mmengine forbids two `_base_`
# files that set the same key, and mmdet keeps this model only in that whole
# recipe, so the data replaces the recipe's here and the demo config inherits
# this file.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py']
image_size = (128, 128)
dataset_type = 'DemoCocoPanopticDataset'
data_root = 'data/demo/panoptic/'
# The demo scenes are 128x128 already: no resize, flips only.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
         with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPanopticAnnotations'),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
# what both splits' data set share (generated together: both split sizes)
_demo_set = dict(type=dataset_type, data_root=data_root, size=image_size[0],
                 num_train=256, num_val=64)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        filter_cfg=None,
        pipeline=train_pipeline,
        **_demo_set))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        pipeline=test_pipeline,
        **_demo_set))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoPanopticMetric',
    ann_file=data_root + 'annotations/panoptic_val.json',
    seg_prefix=data_root + 'annotations/panoptic_val/',
    nproc=1)
test_evaluator = val_evaluator
