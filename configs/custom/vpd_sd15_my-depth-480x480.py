# Monocular depth on YOUR images + depth PNGs, mmseg's VPD depth recipe
# (DepthEstimator + VPDDepthHead, SD1.5 U-Net). Copy this file, set
# data_root / depth_scale / max_depth, then
#   python tools/train.py my_depth_config.py
#   data/my_depth/images/{train,val}/NAME.jpg   RGB images
#   data/my_depth/depth/{train,val}/NAME.png    16-bit depth, metres =
#                                               value / depth_scale, 0 = none
# One prompt for all images: the mean of the NYU scene prompts (file names
# that start with an NYU scene, e.g. kitchen_0001.jpg, pick that scene's).
# Images of any size: training crops crop_size, testing slides over it.
# SD weights: README "Getting the weights".
_base_ = ['mmdiff::vpd/vpd_sd15_4xb8-25k_nyu-480x480.py']

data_root = 'data/my_depth'
depth_scale = 1000  # NYU and the demo: millimetres
max_depth = 10.0    # metres
crop_size = (480, 480)

model = dict(decode_head=dict(max_depth=max_depth))
meta_keys = ('img_path', 'depth_map_path', 'ori_shape', 'img_shape',
             'pad_shape', 'scale_factor', 'flip', 'flip_direction',
             'category_id')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / depth_scale),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
# test_pipeline: what mmseg's inference_model runs on an image alone;
# evaluation loads the ground truth too
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadDepthAnnotation', depth_rescale_factor=1 / depth_scale),
    dict(type='PackSegInputs', meta_keys=meta_keys)
]
_dataset = dict(type='NYUDataset', data_root=data_root, img_suffix='.jpg',
                seg_map_suffix='.png')
train_dataloader = dict(dataset=dict(
    _delete_=True,
    data_prefix=dict(img_path='images/train', depth_map_path='depth/train'),
    pipeline=train_pipeline, **_dataset))
val_dataloader = dict(dataset=dict(
    _delete_=True, test_mode=True,
    data_prefix=dict(img_path='images/val', depth_map_path='depth/val'),
    pipeline=val_pipeline, **_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='DepthMetric', min_depth_eval=1e-3, max_depth_eval=max_depth,
    crop_type=None)
test_evaluator = val_evaluator
