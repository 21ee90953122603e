# Unlabelled demo scenes for diffusion pretraining: 1024 scenes of 128 px of
# a seed the labelled demo sets (seed 0) and the demo VAE (its own
# generator, seed 1000) never use, written to data/demo/unlabelled/seg on
# first use and read through the mmseg demo data set class with its labels
# ignored (no LoadAnnotations in the pipeline). Any image size works: the
# shortest edge goes to image_size, then a random square crop.
image_size = 128
unlabelled_seed = 2000
num_unlabelled = 1024
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=image_size, max_size=100000),
    dict(type='RandomCrop', crop_size=(image_size, image_size)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='DemoSegDataset',
        data_root='data/demo/unlabelled/seg',
        size=image_size,
        num_train=num_unlabelled,
        num_val=0,
        seed=unlabelled_seed,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
