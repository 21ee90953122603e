# Meta Prompts (the source's model) demo: the tiny random-init U-Net on the
# generated demo scenes; 8 meta prompts shared by 2 refinement steps, prompt
# maps into a narrow UPerHead (CE + Lovasz) + FCN auxiliary head.
#   python tools/train.py projects/MetaPrompts/configs/<this file>
_base_ = ['mmdiff::demo/vpd_tiny-fpn_demo-seg.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.MetaPrompts.meta_prompts'
    ],
    allow_failed_imports=False)
num_prompts = 8
norm_cfg = dict(type='GN', num_groups=8, requires_grad=True)
model = dict(
    backbone=dict(
        _base_.demo_backbone,
        _delete_=True,
        type='mmdiff.MetaPromptsBackbone',
        num_prompts=num_prompts,
        refine_steps=2),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=[num_prompts] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=16,
        dropout_ratio=0.,
        num_classes=_base_.num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=[
            dict(type='CrossEntropyLoss', loss_name='loss_ce',
                 use_sigmoid=False, loss_weight=1.0),
            dict(type='LovaszLoss', reduction='none', loss_weight=1.0)
        ]),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=num_prompts,
        in_index=2,
        channels=16,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.,
        num_classes=_base_.num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', loss_name='loss_ce_aux',
            use_sigmoid=False, loss_weight=0.4)))
