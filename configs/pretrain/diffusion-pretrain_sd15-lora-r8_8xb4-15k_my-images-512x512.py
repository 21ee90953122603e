# The same domain adaptation with LoRA (peft, rank 8, on the attention
# projections, as diffusers' train_text_to_image_lora.py): the U-Net's
# weights stay frozen, only the adapters train (lr 1e-4, that script's
# default; no EMA there either). The export merges the adapters into the
# U-Net, so the folder loads with pretrained= like any other.
_base_ = ['./diffusion-pretrain_sd15_8xb4-15k_my-images-512x512.py']
model = dict(lora=dict(rank=8))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
custom_hooks = [
    dict(type='mmdiff.DiffusersExportHook', num_samples=4, sample_steps=25),
    dict(type='mmdiff.NaNGuardHook')
]
