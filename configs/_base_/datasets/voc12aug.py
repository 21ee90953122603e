# Pascal VOC 2012 + SBD aug (21 classes incl. background) as mmseg prepares
# it, 512x512 crops, 2 images a GPU.
_base_ = ['mmseg::_base_/datasets/pascal_voc12_aug.py']
num_classes = 21
train_dataloader = dict(batch_size=2)
