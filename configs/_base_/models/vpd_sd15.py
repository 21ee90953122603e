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
sd15_strides = [8, 16, 32, 64]
