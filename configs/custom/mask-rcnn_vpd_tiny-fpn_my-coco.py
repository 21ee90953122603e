# Try the own-data flow offline in minutes: YOUR COCO json (the layout of
# mask-rcnn_vpd_sd15-fpn_my-coco.py) on the demos' tiny U-Net and demo VAE
# (made on first use) instead of SD1.5 + CLIP. An example in this layout:
#   python tools/misc/make_demo_data.py --own-data data
#   python tools/train.py configs/custom/mask-rcnn_vpd_tiny-fpn_my-coco.py
# Then copy mask-rcnn_vpd_sd15-fpn_my-coco.py for the real model.
_base_ = ['mmdiff::demo/mask-rcnn_vpd_tiny-fpn_demo-coco.py']

classes = ('circle', 'square', 'triangle')  # the json's categories, id order
palette = [(220, 20, 60), (0, 170, 0), (30, 80, 230)]
num_classes = len(classes)
data_root = 'data/my_coco/'

model = dict(
    # one learned 32-d prompt per class (no CLIP offline)
    backbone=dict(class_embeddings=dict(num_classes=num_classes)),
    neck=dict(in_channels=[32, 64 + num_classes, 64 + num_classes, 64]),
    roi_head=dict(
        bbox_head=dict(num_classes=num_classes),
        mask_head=dict(num_classes=num_classes)))
_dataset = dict(
    _delete_=True, type='CocoDataset', data_root=data_root,
    metainfo=dict(classes=classes, palette=palette))
train_dataloader = dict(dataset=dict(
    ann_file='annotations/train.json', data_prefix=dict(img='images/train/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=32),
    pipeline=_base_.train_pipeline, **_dataset))
val_dataloader = dict(dataset=dict(
    ann_file='annotations/val.json', data_prefix=dict(img='images/val/'),
    test_mode=True, pipeline=_base_.test_pipeline, **_dataset))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator
