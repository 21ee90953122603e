# Hyperfeatures demo: the tiny random-init U-Net on the generated demo
# scenes, features from 3 U-Net passes (t = 1, 100, 250, seeded noise)
# mixed per tap by learned softmax weights. Same neck/head as the VPD demo.
#   python tools/train.py projects/Hyperfeatures/configs/<this file>
_base_ = ['mmdiff::demo/vpd_tiny-fpn_demo-seg.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.Hyperfeatures.hyperfeatures'
    ],
    allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmdiff.HyperfeatureVPD',
        timesteps=(1, 100, 250),
        seeds=(0, ),
        noise='seeded'))
