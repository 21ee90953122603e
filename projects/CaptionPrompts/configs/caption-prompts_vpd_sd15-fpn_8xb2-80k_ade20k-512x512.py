# TADP-style captions on VPD (SD1.5, ADE20K, Semantic FPN, VPD's recipe):
# every image is conditioned on its own caption (json {file name: caption},
# e.g. BLIP-2 captions made elsewhere, or class-name captions from
# projects/CaptionPrompts/tools/make_class_captions.py), encoded token by
# token with SD1.5's CLIP ViT-L/14; the L = 77 caption cross-attention maps
# join the 1/16 and 1/32 features. For cross-domain tests set a modifier,
# e.g. caption_template='a dark night photo of {}'.
_base_ = ['mmdiff::vpd/vpd_sd15-fpn_8xb2-80k_ade20k-512x512.py']
custom_imports = dict(
    imports=['mmdiff.models', 'projects.CaptionPrompts.caption_prompts'],
    allow_failed_imports=False)
max_length = 77
model = dict(
    type='mmdiff.MetainfoEncoderDecoder',
    backbone=dict(
        _delete_=True,
        type='mmdiff.CaptionVPD',
        pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
        captions='data/ade/ADEChallengeData2016/captions.json',
        text_encoder='openai/clip-vit-large-patch14',
        caption_template='{}',
        max_length=max_length,
        missing_caption=None,
        use_attn=True),
    # SD1.5 taps + the L = max_length caption attention maps at 1/16, 1/32
    neck=dict(in_channels=[
        c + max_length * (i in _base_.sd15_attn_taps)
        for i, c in enumerate(_base_.sd15_channels)
    ]))
