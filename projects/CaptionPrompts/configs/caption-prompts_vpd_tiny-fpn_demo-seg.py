# CaptionPrompts demo: the tiny random-init U-Net on the generated demo
# scenes, each image conditioned on its own caption (class-name captions
# from make_class_captions.py) through a tiny random CLIP text encoder
# (make_demo_text_encoder.py: plumbing only, not a trained model); the
# caption cross-attention maps (L = 16 token channels) join the features.
#   python projects/CaptionPrompts/tools/make_demo_text_encoder.py data/demo/tiny_clip
#   python projects/CaptionPrompts/tools/make_class_captions.py <this file> --out data/demo/seg/captions.json
#   python tools/train.py <this file>
_base_ = ['mmdiff::demo/vpd_tiny-fpn_demo-seg.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.CaptionPrompts.caption_prompts'
    ],
    allow_failed_imports=False)
max_length = 16
model = dict(
    type='mmdiff.MetainfoEncoderDecoder',
    backbone=dict(
        _base_.demo_backbone,
        _delete_=True,
        type='mmdiff.CaptionVPD',
        captions='data/demo/seg/captions.json',
        text_encoder='data/demo/tiny_clip',
        caption_template='{}',
        max_length=max_length,
        missing_caption='a photo.',
        use_attn=True),
    neck=dict(in_channels=[32, 64 + max_length, 64 + max_length, 64]))
