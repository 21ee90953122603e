# Cityscapes (19 classes) as mmseg prepares it, 512x1024 crops, 2 images a
# GPU.
_base_ = ['mmseg::_base_/datasets/cityscapes.py']
num_classes = 19
train_dataloader = dict(batch_size=2)
