# Caption-conditioned domain adaptation of Stable Diffusion v1.5 on YOUR
# captioned images, as diffusers' train_text_to_image.py trains: the U-Net
# sees each image's caption through SD's own frozen CLIP text encoder (from
# the pretrained folder's text_encoder/ + tokenizer/; its last hidden state,
# 77 tokens), 10 % of the captions replaced by the empty prompt
# (--proportion_empty_prompts 0.1, for classifier-free guidance). Everything
# else as the null-prompt config (min-SNR-5, EMA, gradient checkpointing).
# Data: data/my_images with a metadata.jsonl (Hugging Face imagefolder,
# {"file_name": "0001.png", "text": "a caption"} a line) and/or 0001.txt
# beside 0001.png; an image without a caption is an error (set
# missing_captions='empty' to train it on the empty prompt). The exported
# folder also holds text_encoder/ and tokenizer/ (a full SD folder), and the
# sample grids are prompted with the first 4 captions of the data.
_base_ = ['./diffusion-pretrain_sd15_8xb4-15k_my-images-512x512.py']
image_size = 512
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeShortestEdge', scale=image_size, max_size=100000),
    dict(type='RandomCrop', crop_size=(image_size, image_size)),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'flip',
                   'caption'))
]
train_dataloader = dict(
    dataset=dict(
        captions='auto', caption_column='text', missing_captions='error',
        pipeline=train_pipeline))
model = dict(conditioning='caption', caption_dropout=0.1)
