# What the mmseg demo data sets share: generated 128x128 scenes, 256 to
# train on and 64 to evaluate (a few MB), batches of 4 drawn for ever, one
# image at a time for evaluation, no worker processes (data made on first
# use in the main process).
num_train, num_val = 256, 64
image_size = 128
# the data set configs add type, data_root, data_prefix and pipeline
demo_split = dict(size=image_size, num_train=num_train, num_val=num_val)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=demo_split)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=demo_split)
test_dataloader = val_dataloader
