# Mask2Former (mmseg 1.x) on ADE20K on VPD features with a stride-4 level
# (P2) from the VAE encoder (vae_taps=(1, ): 256 channels) in front of the
# SD1.5 taps: the pixel decoder's mask features come from stride 4, as with
# a ResNet, instead of 8; its deformable encoder keeps the three coarsest
# levels (16-64). The rest is mask2former_vpd_sd15_8xb2-160k_ade20k-512x512.py.
_base_ = ['./mask2former_vpd_sd15_8xb2-160k_ade20k-512x512.py']
num_classes = 150
model = dict(
    backbone=dict(vae_taps=(1, )),
    decode_head=dict(
        in_channels=[256] + [
            c + num_classes * (i in _base_.sd15_attn_taps)
            for i, c in enumerate(_base_.sd15_channels)
        ],
        strides=[4] + _base_.sd15_strides,
        # one stride per input level (5 here; mmdet's default lists 4)
        pixel_decoder=dict(strides=[4] + _base_.sd15_strides)))
