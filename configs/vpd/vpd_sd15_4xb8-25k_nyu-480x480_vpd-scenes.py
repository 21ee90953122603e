# VPD monocular depth on NYUv2 for VPD's OWN released NYU checkpoint
# (wl-zhao/VPD depth/, converted with tools/model_converters/vpd_to_mmdiff.py):
# the model and test protocol of vpd_sd15_4xb8-25k_nyu-480x480.py, with the
# scene prompt of each image chosen by VPD's rule (the first NYU class name,
# in VPD's nyu_class_list.json order, contained in "<folder>_<file name>"),
# the rule that checkpoint was trained with. mmseg's rule (name before the
# first digit) gives another scene for e.g. study_room (VPD: study),
# office_kitchen (VPD: kitchen). See mmdiff/datasets/nyu_scenes.py.
_base_ = ['./vpd_sd15_4xb8-25k_nyu-480x480.py']
scene_rule = 'vpd'
train_dataloader = dict(dataset=dict(scene_rule=scene_rule))
val_dataloader = dict(dataset=dict(scene_rule=scene_rule))
test_dataloader = val_dataloader
