# MetaPromptsVPD on SD1.5 for NYUv2 depth, a LIGHTER VARIANT of Meta Prompts
# (not the source's model, which is meta-prompts_sd15_8xb3-25k_nyu-480x480.py):
# mmdiff's VPD NYU recipe (mmseg's DepthEstimator + VPDDepthHead, 480 crops
# padded to 512) with 64 learned meta prompts instead of the scene prompts,
# 3 refinement loops, learned timestep delta, prompt re-weighted features.
_base_ = ['mmdiff::vpd/vpd_sd15_4xb8-25k_nyu-480x480.py']
custom_imports = dict(
    imports=['mmdiff.models', 'mmdiff.datasets.nyu_scenes',
             'projects.MetaPrompts.meta_prompts'],
    allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmdiff.MetaPromptsVPD',
        pretrained='stable-diffusion-v1-5/stable-diffusion-v1-5',
        num_prompts=64,
        num_loops=3,
        learned_timestep=True,
        reweight=True,
        pad_shape=512,
        grad_checkpointing=True),
    decode_head=dict(in_channels=_base_.sd15_channels))
