# Meta Prompts demo: the tiny random-init U-Net on the generated demo
# scenes; 8 learned meta prompts instead of class prompts, 2 refinement
# loops, learned timestep embedding, prompt re-weighted features.
#   python tools/train.py projects/MetaPrompts/configs/<this file>
_base_ = ['mmdiff::demo/vpd_tiny-fpn_demo-seg.py']
custom_imports = dict(
    imports=[
        'mmdiff.models', 'mmdiff.datasets.demo_datasets',
        'projects.MetaPrompts.meta_prompts'
    ],
    allow_failed_imports=False)
model = dict(
    backbone=dict(
        _base_.demo_backbone,
        _delete_=True,
        type='mmdiff.MetaPromptsVPD',
        num_prompts=8,
        num_loops=2,
        learned_timestep=True,
        reweight=True),
    neck=dict(in_channels=[32, 64, 64, 64]))
