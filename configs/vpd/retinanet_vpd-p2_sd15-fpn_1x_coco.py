# RetinaNet with a stride-4 level (P2) from the VAE encoder in front of the
# VPD taps (SD1.5, 80 COCO class prompts), COCO 1x. The stride-8 config's
# P3-P7 (taps at 8-64 + one extra level) become P2-P6: the FPN starts at
# the VAE level, anchors (octave base 4: 16 px at stride 4) follow. For
# small objects; the rest is retinanet_vpd_sd15-fpn_1x_coco.py.
_base_ = ['./retinanet_vpd_sd15-fpn_1x_coco.py']

model = dict(
    backbone={{_base_.coco_p2_backbone}},
    neck=dict(in_channels={{_base_.coco_p2_neck_in_channels}}, num_outs=5),
    bbox_head=dict(anchor_generator=dict(strides=[4, 8, 16, 32, 64])))
