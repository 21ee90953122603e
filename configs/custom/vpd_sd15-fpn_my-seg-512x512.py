# Semantic segmentation on YOUR image + mask folders (mmseg's layout), VPD's
# recipe (SD1.5 U-Net, class-prompt cross-attention maps, Semantic FPN).
# Copy this file, set classes/palette/data_root, then
#   python tools/train.py my_seg_config.py
#   data/my_seg/images/{train,val}/NAME.jpg   RGB images
#   data/my_seg/masks/{train,val}/NAME.png    8-bit masks, pixel = class index
#                                             (0..K-1), 255 = ignored
# The prompts are CLIP ViT-L/14 embeddings of the class names (computed once,
# cached under ~/.cache/mmdiff). SD weights: README "Getting the weights".
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']

classes = ('background', 'building', 'road')  # yours, in mask-index order
palette = [(0, 0, 0), (180, 120, 120), (140, 140, 140)]  # (r, g, b) tuples
num_classes = len(classes)
data_root = 'data/my_seg'
crop_size = (512, 512)

model = dict(
    backbone=dict(class_embeddings=dict(class_names=list(classes))),
    # SD1.5 taps + the K = num_classes attention maps at 1/16 and 1/32
    neck=dict(in_channels=[
        c + num_classes * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]),
    decode_head=dict(num_classes=num_classes))

dataset_type = 'BaseSegDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True)
         for r in (0.75, 1.0, 1.25)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=False)],
        [dict(type='PackSegInputs')]])
]
_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False)
train_dataloader = dict(dataset=dict(
    _delete_=True,
    data_prefix=dict(img_path='images/train', seg_map_path='masks/train'),
    pipeline=train_pipeline, **_dataset))
val_dataloader = dict(dataset=dict(
    _delete_=True,
    data_prefix=dict(img_path='images/val', seg_map_path='masks/val'),
    pipeline=test_pipeline, **_dataset))
test_dataloader = val_dataloader
