# Stable Diffusion v1.5 for the VPD reference configs.
# `sd15` is a hub id (downloaded once into the Hugging Face cache), a local
# diffusers folder (with unet/ and vae/), or an original single-file
# checkpoint (v1-5-pruned-emaonly.safetensors / .ckpt). Offline, point it at
# local files:  --cfg-options model.backbone.pretrained=/path/to/sd15
#               model.backbone.local_files_only=True
sd15 = 'stable-diffusion-v1-5/stable-diffusion-v1-5'
# CLIP ViT-L/14, SD1.5's text encoder: class prompts are encoded with it at
# build time and cached (tools/misc/build_class_embeddings.py writes the same
# files ahead of time; a path to such a file works too).
clip_l14 = 'openai/clip-vit-large-patch14'
# SD1.5 taps (ldm output blocks 1, 4, 7, final), finest first; with
# cross-attention maps the 1/16 and 1/32 taps carry K class channels more.
sd15_channels = [320, 640, 1280, 1280]
# the taps (indices into sd15_channels) that carry the K attention maps; a
# neck's in_channels with K prompts:
#   [c + K * (i in sd15_attn_taps) for i, c in enumerate(sd15_channels)]
sd15_attn_taps = (1, 2)
sd15_strides = [8, 16, 32, 64]

# Detection / instance segmentation on COCO: VPD conditioned on the 80 class
# prompts with their cross-attention maps. The taps have strides 8-64 (no
# 1/4 level): FPN adds a 1/128 level, anchors start at 32 px (scale 4 at
# stride 8), RoI extractors read strides 8-64.
coco_num_classes = 80
coco_backbone = dict(
    _delete_=True,
    type='mmdiff.VPD',
    pretrained=sd15,
    class_embeddings=dict(
        class_names='coco', text_encoder=clip_l14, templates='vpd',
        output='pooled'),
    use_attn=True)
coco_neck_in_channels = [
    320, 640 + coco_num_classes, 1280 + coco_num_classes, 1280
]
det_data_preprocessor = dict(
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5],
    pad_size_divisor=64)
det_roi_strides = [8, 16, 32, 64]
det_rpn_anchor_generator = dict(scales=[4], strides=[8, 16, 32, 64, 128])

# The same with a stride-4 level (P2) in front: the VAE encoder's
# down_blocks.1 (256 channels), recorded in the encoder pass that makes the
# latents (vae_taps=(1, )). Strides 4-64: mmdet's ResNet layout (FPN P2-P6,
# anchors 32 px at stride 4, RoI extractors at 4-32), for small objects.
coco_p2_backbone = dict(coco_backbone, vae_taps=(1, ))
coco_p2_neck_in_channels = [256] + coco_neck_in_channels
det_p2_roi_strides = [4, 8, 16, 32]
det_p2_rpn_anchor_generator = dict(scales=[8], strides=[4, 8, 16, 32, 64])
