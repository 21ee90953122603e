# Meta Prompts (the source's model) depth demo: the tiny random-init U-Net
# on the generated demo depth scenes; 2 refinement steps each with its own
# 8 meta prompts + adapter, inputs resized to the next multiple of 64 (the
# source's resize_scale 1), the source's depth head at narrow widths.
#   python tools/train.py projects/MetaPrompts/configs/<this file>
_base_ = ['mmdiff::demo/vpd_tiny-depth_demo-nyu.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.MetaPrompts.meta_prompts'
    ],
    allow_failed_imports=False)
num_prompts = 8
model = dict(
    backbone=dict(
        _base_.demo_backbone,
        _delete_=True,
        type='mmdiff.MetaPromptsBackbone',
        num_prompts=num_prompts,
        refine_steps=2,
        share_prompts=False,
        prompt_adapter=True,
        prompt_head='depth',
        deconv_filters=16,
        delete_time_embed=True,
        resize_scale=1),
    decode_head=dict(
        _delete_=True,
        type='mmdiff.MetaPromptsDepthHead',
        max_depth=10.0,
        in_channels=[num_prompts],
        embed_dim=16,
        num_deconv_filters=(16, 16, 16)))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.1),
    constructor='LDMOptimWrapperConstructor')
