# ADE20K (150 classes) as mmseg prepares it, 512x512 crops, 2 images a GPU
# (VPD's 8 GPUs x 2).
_base_ = ['mmseg::_base_/datasets/ade20k.py']
num_classes = 150
train_dataloader = dict(batch_size=2)
