# Hyperfeatures on VPD (SD1.5, ADE20K, Semantic FPN, VPD's recipe): three
# U-Net passes at t = 1, 100, 250 (seeded noise, one seed) mixed per tap by
# learned softmax weights; 3x the U-Net cost of VPD (printed at build).
# Channels are VPD's: [320, 640 + K, 1280 + K, 1280].
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
custom_imports = dict(
    imports=['mmdiff.models', 'projects.Hyperfeatures.hyperfeatures'],
    allow_failed_imports=False)
model = dict(
    backbone=dict(
        type='mmdiff.HyperfeatureVPD',
        timesteps=(1, 100, 250),
        seeds=(0, ),
        noise='seeded',
        bottleneck=None,
        grad_checkpointing=True))  # activations of 3 passes
