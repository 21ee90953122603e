# Try the own-data flow offline in minutes: YOUR image + mask folders (the
# layout of vpd_sd15-fpn_my-seg-512x512.py) on the demos' tiny U-Net and demo
# VAE (made on first use) instead of SD1.5 + CLIP. An example in this layout:
#   python tools/misc/make_demo_data.py --own-data data
#   python tools/train.py configs/custom/vpd_tiny-fpn_my-seg.py
# Then copy vpd_sd15-fpn_my-seg-512x512.py for the real model.
_base_ = ['mmdiff::demo/vpd_tiny-fpn_demo-seg.py']

classes = ('background', 'circle', 'square', 'triangle')  # mask index order
palette = [(0, 0, 0), (220, 20, 60), (0, 170, 0), (30, 80, 230)]
num_classes = len(classes)
data_root = 'data/my_seg'
scale = (128, 128)  # the tiny model's input size

model = dict(
    # one learned 32-d prompt per class (no CLIP offline)
    backbone=dict(class_embeddings=dict(num_classes=num_classes)),
    neck=dict(in_channels=[32, 64 + num_classes, 64 + num_classes, 64]),
    decode_head=dict(num_classes=num_classes))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='Resize', scale=scale, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=False),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
_dataset = dict(
    type='BaseSegDataset',
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
