# Your unlabelled images for diffusion pretraining: every image under
# data/my_images (any sizes, any subfolders; mmdiff.ImageFolderDataset skips
# and counts files that do not decode), shortest edge to 512, random 512x512
# crop, flip; 4 a GPU.
image_size = 512
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=image_size, max_size=100000),
    dict(type='RandomCrop', crop_size=(image_size, image_size)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='data/my_images',
        pipeline=train_pipeline))
